"""Who sees which runs: a key its organization's apps, a user their organizations'; others get 404."""

import pytest

from tests.factories import AppFactory
from tests.helpers import ingest

RUN = {"name": "chain_start", "run_id": "r", "timestamp": "2026-05-01T10:00:00Z"}


@pytest.fixture
def both(acme_app, globex_app):
    ingest(acme_app, {**RUN, "input": "acme secret"})
    ingest(globex_app, {**RUN, "input": "globex secret"}, {**RUN, "run_id": "g-only"})


def test_a_key_lists_its_default_app(acme_client, both):
    runs = acme_client.get("/api/run/").json()["results"]
    assert [r["input"] for r in runs] == ["acme secret"]


def test_a_key_cannot_list_read_or_compare_another_organizations_runs(acme_client, both, globex_app):
    other = f"app_id={globex_app.public_id}"
    assert acme_client.get(f"/api/run/?{other}").status_code == 404
    assert acme_client.get(f"/api/run/r/?{other}").status_code == 404
    assert acme_client.get("/api/run/g-only/").status_code == 404
    compare = {"run_id_a": "r", "run_id_b": "g-only", "app_id": str(globex_app.public_id)}
    assert acme_client.post("/api/run/compare", compare, format="json").status_code == 404
    assert (
        acme_client.post("/api/run/compare", {"run_id_a": "r", "run_id_b": "g-only"}, format="json").status_code == 404
    )


def test_a_key_reads_another_app_of_its_organization(acme_client, acme, both):
    sibling = AppFactory(organization=acme, name="Sibling", slug="sibling")
    ingest(sibling, {**RUN, "input": "sibling"})
    runs = acme_client.get(f"/api/run/?app_id={sibling.public_id}").json()["results"]
    assert [r["input"] for r in runs] == ["sibling"]


def test_a_user_reads_their_organizations_runs(client, alice, bob, both, globex_app):
    client.force_login(alice)
    assert [r["input"] for r in client.get("/api/run/").json()["results"]] == ["acme secret"]
    assert client.get(f"/api/run/?app_id={globex_app.public_id}").status_code == 404
    assert client.get("/api/run/r/").json()["input"] == "acme secret"


def test_anonymous_callers_are_refused(client, both):
    response = client.get("/api/run/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"


def test_a_user_without_apps_gets_a_404(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="loner"))
    assert client.get("/api/run/").status_code == 404


def test_the_list_has_a_fixed_number_of_queries(acme_client, acme_app, django_assert_num_queries):
    ingest(acme_app, *[{**RUN, "run_id": f"r{n}", "parent_run_id": "p"} for n in range(120)])
    acme_client.get("/api/run/")
    # key lookup, the page of runs: no COUNT(*), nothing per run
    with django_assert_num_queries(2):
        assert len(acme_client.get("/api/run/?limit=100&tags=x,y&search=r&ordering=-cost").json()["results"]) == 0
    with django_assert_num_queries(2):
        assert len(acme_client.get("/api/run/?limit=100").json()["results"]) == 100


def test_the_list_for_a_session_user_has_a_fixed_number_of_queries(client, alice, acme_app, django_assert_num_queries):
    ingest(acme_app, *[{**RUN, "run_id": f"r{n}"} for n in range(60)])
    client.force_login(alice)
    client.get("/api/run/")
    # session, user, current app, the page of runs
    with django_assert_num_queries(4):
        assert len(client.get("/api/run/").json()["results"]) == 50


@pytest.mark.parametrize("url", ["/api/run/", "/api/run/r1/", "/api/threads/", "/api/apps/"])
@pytest.mark.parametrize("how", [{"HTTP_ACCEPT": "text/html"}, {"QUERY_STRING": "format=api"}])
def test_the_browsable_api_opens_in_a_browser(client, alice, acme_app, url, how):
    ingest(acme_app, {"name": "llm_call", "run_id": "r1", "output": "<script>alert(1)</script>", "thread_id": "t"})
    client.force_login(alice)
    response = client.get(url, **how)
    assert response.status_code == 200, response.content[:2000]
    assert response["Content-Type"].startswith("text/html")
    assert b"<script>alert(1)</script>" not in response.content


def test_a_404_has_the_api_error_shape(acme_client, both):
    response = acme_client.get("/api/run/no-such-run/")
    assert response.status_code == 404 and response.json() == {"error": "No run 'no-such-run' in this app."}
