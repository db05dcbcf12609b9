"""LLMonitor's SDK posts to /api/report with no key, naming the app in each event: accepted only for an app
whose owner turned on legacy ingestion by app id (Settings, the admin or `manage.py legacy_ingestion`)."""

from __future__ import annotations

from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command

from apps.tracing.models import Run
from tests.helpers import run

AGENT, LLM = "170234988812345", "170234988812346"


def events(app) -> list[dict]:
    common = {"app": str(app.public_id), "runtime": "llmonitor-py"}
    return [
        {**common, "event": "start", "type": "agent", "runId": AGENT, "name": "planner", "userId": "u-9",
         "timestamp": "2026-06-01T10:00:00.123456+00:00", "input": "plan a trip"},
        {**common, "event": "start", "type": "llm", "runId": LLM, "parentRunId": AGENT, "name": "gpt-4o",
         "timestamp": "2026-06-01T10:00:01.000001+00:00", "input": [{"role": "user", "text": "plan"}]},
        {**common, "event": "end", "type": "llm", "runId": LLM, "parentRunId": None, "userId": None,
         "timestamp": "2026-06-01T10:00:02.500000+00:00", "output": {"role": "ai", "text": "Day 1: ..."},
         "tokensUsage": {"prompt": 100, "completion": 50}},
        {**common, "event": "end", "type": "agent", "runId": AGENT, "timestamp": "2026-06-01T10:00:03+00:00",
         "output": "done"},
    ]  # fmt: skip


def report(client, document, *, expect: int = 200):
    response = client.post("/api/report", orjson.dumps(document), content_type="application/json")
    assert response.status_code == expect, response.content
    return response


@pytest.fixture
def legacy_app(acme_app):
    acme_app.legacy_ingestion = True
    acme_app.save(update_fields=["legacy_ingestion"])
    return acme_app


def test_events_by_app_id_without_a_key(client, legacy_app):
    body = report(client, {"events": events(legacy_app)}).json()
    assert body == {"accepted": 4, "rejected": 0, "errors": []}
    agent, llm = run(AGENT, legacy_app), run(LLM, legacy_app)
    assert (agent.type, agent.agent, agent.user_id, agent.latency_s) == ("agent", "planner", "u-9", 2.876544)
    assert (llm.parent_run_id, llm.model, llm.prompt_tokens, llm.completion_tokens) == (AGENT, "gpt-4o", 100, 50)
    assert llm.started_at.microsecond == 1 and llm.cost > 0


def test_retried_batches_nested_deeper_are_flattened_and_stored_once(client, legacy_app):
    batch = events(legacy_app)
    report(client, {"events": [batch[:2]]})
    report(client, {"events": [[batch[:2]], batch[2:]]})
    report(client, {"events": [[[batch]]]})
    assert Run.objects.count() == 2 and run(LLM, legacy_app).completion_tokens == 50


def test_off_by_default_a_401_as_without_a_key(client, acme_app):
    response = report(client, {"events": events(acme_app)}, expect=401)
    assert response["WWW-Authenticate"] == "Bearer"
    assert not Run.objects.exists()


def test_events_for_other_apps_are_rejected_but_answered_200(client, legacy_app, globex_app):
    batch = events(legacy_app)
    others = [{**event, "app": str(globex_app.public_id)} for event in batch[:1]]
    others.append({**batch[0], "app": "not-a-uuid"})
    body = report(client, {"events": [*others, *batch]}).json()
    assert (body["accepted"], body["rejected"]) == (4, 2)
    assert body["errors"][0] == {"index": 0, "error": "app: no app takes events by this id without an API key"}
    assert not Run.objects.filter(app=globex_app).exists()


def test_bad_events_are_listed_and_the_rest_stored(client, legacy_app):
    batch = events(legacy_app)
    bad = {"app": str(legacy_app.public_id), "event": "start", "type": "llm", "runId": "x", "timestamp": "soon"}
    body = report(client, {"events": [bad, *batch]}).json()
    assert body["rejected"] == 1 and "timestamp" in body["errors"][0]["error"]
    assert Run.objects.count() == 2


def test_a_key_still_means_our_own_format(acme_client, legacy_app):
    report(acme_client, {"events": events(legacy_app)}, expect=207)  # end events have no `name` of ours
    assert not Run.objects.filter(type="agent").exists()


def test_the_command_turns_it_on_and_off(client, acme_app, globex):
    out = StringIO()
    call_command("legacy_ingestion", "support-bot", "on", stdout=out)
    assert str(acme_app.public_id) in out.getvalue()
    report(client, {"events": events(acme_app)})
    call_command("legacy_ingestion", "support-bot", "off", "--org", "acme", stdout=StringIO())
    report(client, {"events": events(acme_app)}, expect=401)
    with pytest.raises(CommandError, match="no app 'support-bot' in organization 'globex'"):
        call_command("legacy_ingestion", "support-bot", "on", "--org", "globex")


def test_the_command_asks_which_organization_when_two_have_the_slug(acme_app, globex):
    from tests.factories import AppFactory

    AppFactory(organization=globex, slug="support-bot")
    with pytest.raises(CommandError, match="say which with --org"):
        call_command("legacy_ingestion", "support-bot", "on")


def test_an_owner_turns_it_on_in_settings(client, alice, acme_app):
    client.force_login(alice)
    data = {"name": acme_app.name, "retention_days": "", "legacy_ingestion": "on"}
    response = client.post(f"/settings/apps/{acme_app.public_id}/", data)
    assert response.status_code == 302
    acme_app.refresh_from_db()
    assert acme_app.legacy_ingestion
    page = client.get("/settings/").content.decode()
    assert 'name="legacy_ingestion"' in page and "checked" in page
    client.post(f"/settings/apps/{acme_app.public_id}/", {"name": acme_app.name, "retention_days": ""})
    acme_app.refresh_from_db()
    assert not acme_app.legacy_ingestion


def test_the_rate_limit_counts_per_app(client, legacy_app, settings):
    settings.OBSERVATORY_RATE_LIMIT_PER_MINUTE = 1
    report(client, {"events": events(legacy_app)})
    response = report(client, {"events": events(legacy_app)}, expect=429)
    assert 1 <= int(response["Retry-After"]) <= 60
