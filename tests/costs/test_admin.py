"""The cost table in the Django admin: list, inline edits, validation, and recalculation started from it."""

from datetime import date
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost, Recalculation
from apps.tracing.models import Run
from tests.helpers import ingest

ADD = "/admin/costs/modelcost/add/"


def form(**fields) -> dict:
    return {"model": "m", "provider": "", "prompt_price": "1", "completion_price": "2", "cached_prompt_price": "",
            "total_price": "", "valid_from": "", "price_date": "", **fields}  # fmt: skip


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run on-commit callbacks (the enqueued recalculations, eager in tests) when the block ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_the_list_shows_prices_and_searches(admin_client):
    ModelCost.objects.create(model="gpt-4o", provider="OpenAI", prompt_price=1, completion_price=2)
    ModelCost.objects.create(model="claude", provider="Anthropic", prompt_price=3, completion_price=4)
    page = admin_client.get("/admin/costs/modelcost/?q=gpt")
    assert page.status_code == 200
    assert b"gpt-4o" in page.content and b"claude" not in page.content


def test_the_list_shows_prices_as_plain_decimals_and_saves_them_back(admin_client):
    row = ModelCost.objects.create(
        model="tiny", prompt_price=Decimal("0.00000001"), completion_price=0, cached_prompt_price=Decimal("12.5")
    )
    page = admin_client.get("/admin/costs/modelcost/")
    html = page.content.decode()
    # Stored as Decimal("1E-8") and Decimal("0E-8"): shown trimmed, never in scientific notation.
    assert 'name="form-0-prompt_price" value="0.00000001"' in html
    assert 'name="form-0-completion_price" value="0"' in html
    assert 'name="form-0-cached_prompt_price" value="12.5"' in html
    assert 'name="form-0-total_price" step' in html  # empty: no value
    assert "E-" not in html and "E+" not in html
    assert '<td class="field-valid_from nowrap">—</td>' in html
    assert "admin/observatory.css" in html  # the styles that fit the table in 1280 px
    assert 'id="nav-sidebar"' not in html

    data = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(row.pk), "_save": "Save",
        "form-0-prompt_price": "0.00000001", "form-0-completion_price": "0", "form-0-cached_prompt_price": "12.5",
        "form-0-total_price": "",
    }  # fmt: skip
    assert admin_client.post("/admin/costs/modelcost/", data).status_code == 302
    row.refresh_from_db()
    assert (row.prompt_price, row.completion_price, row.cached_prompt_price) == (Decimal("1E-8"), 0, Decimal("12.5"))


@pytest.mark.parametrize(
    "fields,field,message",
    [
        ({"prompt_price": "-1"}, "prompt_price", "greater than or equal to 0"),
        ({"completion_price": "abc"}, "completion_price", "Enter a number"),
        ({"model": "gpt-(", "is_pattern": "on"}, "model", "Not a valid regular expression"),
        ({"valid_from": "2026-05-01"}, "valid_from", "already has a price for 2026-05-01"),
        ({}, "valid_from", "already has a price for always"),
    ],
)
def test_invalid_rows_are_refused_with_a_message(admin_client, fields, field, message):
    ModelCost.objects.create(model="m", prompt_price=1, completion_price=1)
    ModelCost.objects.create(model="m", prompt_price=1, completion_price=1, valid_from=date(2026, 5, 1))
    response = admin_client.post(ADD, form(**fields))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors.get(field, []))
    assert ModelCost.objects.count() == 2


def test_adding_a_row_recalculates_that_model_and_says_so(admin_client, acme_app, on_commit):
    ingest(acme_app, {"name": "llm_call", "run_id": "r", "model": "new-model", "prompt_tokens": 1000,
                      "completion_tokens": 0})  # fmt: skip
    with on_commit():
        response = admin_client.post(ADD, form(model="new-model", prompt_price="0.5"), follow=True)
    assert any("new-model are being recalculated" in str(m) for m in response.context["messages"])
    job = Recalculation.objects.get()
    assert (job.model, job.state, job.changed) == ("new-model", Recalculation.State.DONE, 1)
    assert Run.objects.with_cost().get(run_id="r").cost == Decimal("0.5")


def test_inline_editing_of_prices_recalculates(admin_client, acme_app, on_commit):
    row = ModelCost.objects.create(model="m", prompt_price=1, completion_price=1)
    ingest(acme_app, {"name": "llm_call", "run_id": "r", "model": "m", "prompt_tokens": 1000, "completion_tokens": 0})
    data = {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(row.pk), "form-0-prompt_price": "2",
        "form-0-completion_price": "1", "form-0-cached_prompt_price": "", "form-0-total_price": "", "_save": "Save",
    }  # fmt: skip
    with on_commit():
        response = admin_client.post("/admin/costs/modelcost/", data, follow=True)
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.prompt_price == 2
    assert Run.objects.with_cost().get(run_id="r").cost == 2


def test_deleting_a_row_recalculates_to_zero(admin_client, acme_app, on_commit):
    row = ModelCost.objects.create(model="m", prompt_price=1, completion_price=1)
    ingest(acme_app, {"name": "llm_call", "run_id": "r", "model": "m", "prompt_tokens": 1000, "completion_tokens": 0})
    with on_commit():
        admin_client.post(f"/admin/costs/modelcost/{row.pk}/delete/", {"post": "yes"}, follow=True)
    assert Run.objects.with_cost().get(run_id="r").cost == 0
    assert Recalculation.objects.get().reason.startswith("deleted")


def test_the_admin_action_recalculates_selected_models(admin_client, acme_app, on_commit):
    row = ModelCost.objects.create(model="m", prompt_price=1, completion_price=1)
    ingest(acme_app, {"name": "llm_call", "run_id": "r", "model": "m", "prompt_tokens": 1000, "completion_tokens": 0})
    ModelCost.objects.filter(pk=row.pk).update(prompt_price=7)  # e.g. edited by a script
    with on_commit():
        admin_client.post("/admin/costs/modelcost/", {"action": "recalculate", "_selected_action": [row.pk]})
    assert Run.objects.with_cost().get(run_id="r").cost == 7
    assert admin_client.get("/admin/costs/recalculation/").status_code == 200
