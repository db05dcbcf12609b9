"""An app_id outside the key's organization is rejected; run ids are unique per app, never globally."""

from apps.tenancy.models import ApiKey
from apps.tracing.models import Event, Run
from tests.factories import AppFactory
from tests.helpers import report

EVENT = {"name": "chain_start", "run_id": "shared-id", "timestamp": "2026-05-29T08:00:00Z"}


def test_an_app_id_of_another_organization_is_rejected_and_writes_nothing(acme_client, globex_app):
    response = report(acme_client, {**EVENT, "app_id": str(globex_app.public_id)}, expect=207)
    assert response.json()["errors"] == [
        {"index": 0, "error": f"app_id: no app '{globex_app.public_id}' in this key's organization"}
    ]
    assert not Run.objects.exists() and not Event.objects.exists()


def test_an_app_id_in_metadata_is_checked_too(acme_client, globex_app):
    response = report(acme_client, {**EVENT, "metadata": {"app_id": str(globex_app.public_id)}}, expect=207)
    assert "app_id" in response.json()["errors"][0]["error"]
    assert not Run.objects.exists()


def test_an_unknown_or_malformed_app_id_is_rejected(acme_client, acme_app):
    response = report(acme_client, {**EVENT, "app_id": "not-a-uuid"}, {**EVENT, "app_id": "7" * 32}, expect=207)
    assert response.json()["rejected"] == 2


def test_an_app_id_of_the_same_organization_routes_the_event(acme_client, acme_app, acme):
    other = AppFactory(organization=acme, name="Other", slug="other")
    report(
        acme_client,
        {**EVENT, "app_id": str(other.public_id)},
        {**EVENT, "run_id": "meta", "metadata": {"app_id": str(other.public_id).upper()}},
        {**EVENT, "run_id": "d"},
    )
    assert set(Run.objects.filter(app=other).values_list("run_id", flat=True)) == {"shared-id", "meta"}
    assert list(Run.objects.filter(app=acme_app).values_list("run_id", flat=True)) == ["d"]


def test_the_same_run_id_in_two_organizations_makes_two_runs(acme_client, globex_client, acme_app, globex_app):
    report(acme_client, {**EVENT, "input": "acme"})
    report(globex_client, {**EVENT, "input": "globex", "parent_run_id": "p"})
    report(globex_client, {"name": "chain_end", "run_id": "shared-id", "output": "done"})
    acme_run, globex_run = Run.objects.get(app=acme_app), Run.objects.get(app=globex_app)
    assert (acme_run.input, acme_run.status, acme_run.parent_run_id) == ("acme", "started", None)
    assert (globex_run.input, globex_run.status, globex_run.output) == ("globex", "success", "done")


def test_the_same_client_event_id_in_two_organizations_is_not_a_duplicate(acme_client, globex_client):
    report(acme_client, {**EVENT, "id": "e1"})
    report(globex_client, {**EVENT, "id": "e1"})
    assert Event.objects.count() == 2


def test_a_key_writes_to_its_own_default_app(acme_app, acme):
    second = AppFactory(organization=acme, name="Second", slug="second")
    _, raw = ApiKey.issue(app=second)
    from tests.conftest import key_client

    report(key_client(raw), EVENT)
    assert Run.objects.get().app == second
