"""The saved runs admin (/admin/tracing/savedrun/): columns, filters, search, a pinned query count,
and its actions, "unsave" and "export as JSONL"."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.costs.models import ModelCost
from apps.tracing import datasets
from apps.tracing.admin import HEAVY_FIELDS
from apps.tracing.models import Run
from tests.factories import UserFactory
from tests.helpers import ingest

CHANGELIST = reverse("admin:tracing_savedrun_changelist")


def llm(run_id: str, **fields) -> dict:
    return {"name": "llm_call", "run_id": run_id, "model": "gpt-x", "prompt_tokens": 1000, "completion_tokens": 500,
            "timestamp": "2026-05-01T10:00:00Z", "input": f"question {run_id}", "output": "answer",
            **fields}  # fmt: skip


def saved(*run_ids: str) -> list[dict]:
    return [{"name": "saved", "run_id": run_id} for run_id in run_ids]


def listed(response) -> list[str]:
    """The run names of the changelist's rows, in order."""
    assert response.status_code == 200
    return re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a>', response.content.decode())


@pytest.fixture
def admin(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def runs(acme_app, globex_app):
    ModelCost.objects.create(model="gpt-x", prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    ingest(
        acme_app,
        llm("a1", run_name="refund question", metadata={"agent": "support", "user_id": "u-42"}),
        llm("a2", run_name="summary", model="claude", metadata={"agent": "sales"}),
        llm("a3", run_name="never saved", metadata={"agent": "hidden-agent"}, model="hidden-model"),
    )
    ingest(acme_app, *saved("a1"))
    ingest(acme_app, *saved("a2"))  # saved after a1: listed first
    ingest(globex_app, llm("g1", run_name="globex call", metadata={"agent": "globex-agent"}), *saved("g1"))
    return acme_app


def test_it_lists_saved_runs_only_newest_save_first(admin, runs):
    assert listed(admin.get(CHANGELIST)) == ["globex call", "summary", "refund question"]


def test_a_row_shows_app_agent_model_tokens_cost_and_saved_at(admin, runs):
    body = admin.get(CHANGELIST).content.decode()
    row = re.search(r"<tr>(?:(?!</tr>).)*refund question.*?</tr>", body, re.S).group(0)
    assert "Acme / Support Bot" in row and "support" in row and "gpt-x" in row
    assert '<td class="field-tokens">1,500</td>' in row
    assert "$0.02" in row  # 1,000 prompt tokens at $0.01/1K + 500 completion tokens at $0.02/1K
    saved_at = Run.objects.get(run_id="a1").saved_at
    assert f"{saved_at:%Y}" in re.search(r'<td class="field-saved_at[^"]*">([^<]+)</td>', row).group(1)


def test_the_filters_offer_the_values_of_saved_runs_only(admin, runs):
    body = admin.get(CHANGELIST).content.decode()
    for value in ("support", "sales", "globex-agent", "claude", "gpt-x"):
        assert f"?agent={value}" in body or f"?model={value}" in body, value
    assert "hidden-agent" not in body and "hidden-model" not in body
    assert "Acme / Support Bot" in body and "Globex / Sales Bot" in body  # the app filter


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("agent=support", ["refund question"]),
        ("model=claude", ["summary"]),
        ("agent=nobody", []),
        ("q=refund", ["refund question"]),
        ("q=a2", ["summary"]),  # run id
        ("q=u-42", ["refund question"]),  # user id
        ("q=globex-agent", ["globex call"]),
        ("q=never", []),  # not saved
    ],
)
def test_filters_and_search(admin, runs, query, expected):
    assert listed(admin.get(f"{CHANGELIST}?{query}")) == expected


def test_the_app_filter_and_its_agents(admin, runs, globex_app):
    response = admin.get(f"{CHANGELIST}?app__id__exact={globex_app.pk}")
    assert listed(response) == ["globex call"]
    body = response.content.decode()
    assert "agent=globex-agent" in body and "agent=support" not in body  # agents of the chosen app's saved runs


def test_a_chosen_value_missing_from_the_choices_stays_offered(admin, runs):
    body = admin.get(f"{CHANGELIST}?agent=nobody").content.decode()
    assert re.search(r'<li class="selected">\s*<a href="\?agent=nobody"', body)


def test_the_changelist_is_a_fixed_number_of_queries(admin, runs, acme_app, django_assert_num_queries):
    admin.get(CHANGELIST)
    ingest(
        acme_app,
        *(llm(f"m{n}", metadata={"agent": f"agent-{n}"}) for n in range(30)),
        *saved(*(f"m{n}" for n in range(30))),
    )
    # session, user, the agent choices, the model choices, the apps (app filter), the count, the page
    # (with app, organization and cost: nothing per row)
    with django_assert_num_queries(7):
        response = admin.get(CHANGELIST)
    assert len(listed(response)) == 33
    with django_assert_num_queries(7):
        admin.get(f"{CHANGELIST}?agent=agent-3&q=m3&app__id__exact={acme_app.pk}")


def test_the_changelist_defers_the_payloads(admin, runs):
    with CaptureQueriesContext(connection) as captured:
        admin.get(CHANGELIST)
    page = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('SELECT "tracing_run"."id"') and '"tracing_run"."saved_at" DESC' in q["sql"]
    ]
    assert len(page) == 1
    for field in HEAVY_FIELDS:
        assert f'"tracing_run"."{field}"' not in page[0], field


def test_no_full_count_and_no_facets(admin, runs):
    from apps.tracing.admin import SavedRunAdmin

    assert SavedRunAdmin.show_full_result_count is False
    body = admin.get(f"{CHANGELIST}?_facets=1").content.decode()
    assert "(1)" not in re.sub(r"<select.*?</select>", "", body, flags=re.S)  # no facet counts on the filters


def test_the_run_page_is_read_only_and_shows_the_payload(admin, runs):
    run = Run.objects.get(run_id="a1")
    response = admin.get(reverse("admin:tracing_savedrun_change", args=[run.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "question a1" in body and 'name="_save"' not in body
    assert admin.get(reverse("admin:tracing_savedrun_add")).status_code == 403


def action(client, name: str, *runs: Run):
    return client.post(CHANGELIST, {"action": name, "_selected_action": [run.pk for run in runs], "index": 0})


def test_unsave_clears_saved_and_saved_at_and_says_so(admin, runs):
    a1, a2 = Run.objects.get(run_id="a1"), Run.objects.get(run_id="a2")
    response = action(admin, "unsave", a1, a2)
    assert response.status_code == 302
    assert Run.objects.filter(run_id__in=["a1", "a2"], saved=False, saved_at__isnull=True).count() == 2
    assert Run.objects.get(run_id="g1").saved
    follow = admin.get(response["Location"])
    assert "2 runs are no longer saved." in follow.content.decode()
    assert listed(follow) == ["globex call"]


def test_unsave_needs_the_change_permission(client, runs):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_savedrun"))
    client.force_login(viewer)
    body = client.get(CHANGELIST).content.decode()
    assert 'value="export_jsonl"' in body and 'value="unsave"' not in body
    action(client, "unsave", Run.objects.get(run_id="a1"))
    assert Run.objects.get(run_id="a1").saved
    viewer.user_permissions.add(Permission.objects.get(codename="change_savedrun"))
    action(client, "unsave", Run.objects.get(run_id="a1"))
    assert not Run.objects.get(run_id="a1").saved


def test_there_is_no_delete_action(admin, runs):
    body = admin.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in body


def test_export_as_jsonl_streams_the_selected_runs(admin, runs, monkeypatch):
    monkeypatch.setattr(datasets, "PAGE_SIZE", 1)
    ingest(runs, {"name": "feedback", "run_id": "a1", "rating": "positive", "comment": "good"})
    a1, g1 = Run.objects.get(run_id="a1"), Run.objects.get(run_id="g1")
    response = action(admin, "export_jsonl", g1, a1)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="saved-runs.jsonl"'
    found = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [line["run_id"] for line in found] == ["a1", "g1"]  # id order
    assert found[0] == {
        "run_id": "a1", "name": "refund question", "type": "llm", "model": "gpt-x", "input": "question a1",
        "output": "answer", "metadata": {"agent": "support", "user_id": "u-42"}, "tags": [],
        "feedback": [{"rating": "positive", "comment": "good"}],
    }  # fmt: skip
    assert found[1]["feedback"] == []


def test_export_of_every_run_matching_a_filter(admin, runs):
    form = {"action": "export_jsonl", "_selected_action": ["0"], "select_across": "1", "index": 0}
    response = admin.post(f"{CHANGELIST}?agent=sales", form)
    found = [json.loads(line)["run_id"] for line in b"".join(response.streaming_content).splitlines()]
    assert found == ["a2"]


def test_the_filter_choices_come_from_the_latest_saved_runs_only(admin, runs, monkeypatch):
    monkeypatch.setattr("apps.tracing.admin.CHOICES_SAMPLE", 1)
    body = admin.get(CHANGELIST).content.decode()
    assert "?agent=globex-agent" in body  # g1: the latest save
    assert "?agent=support" not in body and "?agent=sales" not in body
    assert listed(admin.get(f"{CHANGELIST}?agent=support")) == ["refund question"]  # filtering still works
