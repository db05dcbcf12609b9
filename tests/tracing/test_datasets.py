"""GET /api/datasets/export: saved runs as JSON lines (jsonl, openai), the runs list's filters and
access, keyset streaming in id order, and the skipped count of the openai format (docs/DATASETS.md)."""

from __future__ import annotations

import html
import importlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from apps.costs.models import ModelCost
from apps.tracing import datasets
from apps.tracing.datasets import ChatShaped, chat_example
from apps.tracing.models import Event, Run
from tests.factories import AppFactory, UserFactory
from tests.helpers import ingest

URL = "/api/datasets/export"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my parcel?"}]


def llm(run_id: str, *, when: str = "2026-05-01T10:00:00Z", **fields) -> dict:
    return {"name": "llm_call", "run_id": run_id, "model": "gpt-x", "prompt_tokens": 10, "completion_tokens": 5,
            "timestamp": when, **fields}  # fmt: skip


def saved(*run_ids: str) -> list[dict]:
    return [{"name": "saved", "run_id": run_id} for run_id in run_ids]


def lines(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response.streaming
    body = b"".join(response.streaming_content)
    assert body == b"" or body.endswith(b"\n")
    return [json.loads(line) for line in body.splitlines()]


def ids(response) -> list[str]:
    return [line["run_id"] for line in lines(response)]


@pytest.fixture
def runs(acme_app):
    """s1-s4 saved (s1 a chat with feedback, s2 a plain prompt, s3 a tool, s4 a chat by claude), u1 not saved."""
    ModelCost.objects.create(model="gpt-x", prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    ingest(
        acme_app,
        llm("s1", input=CHAT, output="It ships today.", tags=["vip"], metadata={"agent": "support", "lang": "en"}),
        llm("s2", when="2026-05-02T10:00:00Z", input="Summarise this", output="Done", metadata={"agent": "sales"}),
        {"name": "tool_start", "run_id": "s3", "timestamp": "2026-05-03T10:00:00Z", "input": {"q": "weather"}},
        {"name": "tool_end", "run_id": "s3", "timestamp": "2026-05-03T10:00:01Z", "output": {"temp": 21}},
        llm("s4", when="2026-05-04T10:00:00Z", model="claude", input={"messages": CHAT},
            output={"role": "assistant", "content": "Tomorrow."}, metadata={"agent": "support"}),
        llm("u1", input=CHAT, output="not saved"),
        *saved("s1", "s2", "s3", "s4"),
        {"name": "feedback", "run_id": "s1", "rating": "positive", "comment": "spot on",
         "timestamp": "2026-05-01T11:00:00Z"},
        {"name": "feedback", "run_id": "s1", "rating": "negative", "timestamp": "2026-05-01T12:00:00Z"},
        {"name": "feedback", "run_id": "u1", "rating": "negative"},
    )  # fmt: skip
    return acme_app


# --- jsonl -------------------------------------------------------------------------------------


def test_jsonl_is_one_line_per_saved_run_in_id_order(acme_client, runs):
    response = acme_client.get(f"{URL}?app_id={runs.public_id}&format=jsonl")
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="support-bot-saved.jsonl"'
    assert datasets.SKIPPED_HEADER not in response
    found = lines(response)
    assert [line["run_id"] for line in found] == ["s1", "s2", "s3", "s4"]
    assert found[0] == {
        "run_id": "s1", "name": "gpt-x", "type": "llm", "model": "gpt-x", "input": CHAT,
        "output": "It ships today.", "metadata": {"agent": "support", "lang": "en"}, "tags": ["vip"],
        "feedback": [{"rating": "positive", "comment": "spot on"}, {"rating": "negative", "comment": ""}],
    }  # fmt: skip
    assert found[2]["type"] == "tool" and found[2]["output"] == {"temp": 21} and found[2]["feedback"] == []


def test_jsonl_is_the_default_format(acme_client, runs):
    assert ids(acme_client.get(URL)) == ["s1", "s2", "s3", "s4"]


def test_no_saved_runs_is_an_empty_file(acme_client, acme_app):
    ingest(acme_app, llm("u1", input=CHAT, output="x"))
    assert lines(acme_client.get(URL)) == []
    response = acme_client.get(f"{URL}?format=openai")
    assert lines(response) == [] and response[datasets.SKIPPED_HEADER] == "0"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type=llm", ["s1", "s2", "s4"]),
        ("type=tool", ["s3"]),
        ("agent=support", ["s1", "s4"]),
        ("model=claude", ["s4"]),
        ("tags=vip", ["s1"]),
        ("feedback=positive", ["s1"]),
        ("has_feedback=false", ["s2", "s3", "s4"]),
        ("from=2026-05-02T00:00:00Z&to=2026-05-03T12:00:00Z", ["s2", "s3"]),
        ("search=summarise", ["s2"]),
        ("min_cost=0.0001", ["s1", "s2"]),  # claude has no price: s4 cost $0
        ("status=success&root=true", ["s1", "s2", "s3", "s4"]),
        ("agent=nobody", []),
        # The export is of saved runs whatever `saved` says, and in id order whatever `ordering` says.
        ("saved=false", ["s1", "s2", "s3", "s4"]),
        ("ordering=-cost&limit=1&cursor=junk", ["s1", "s2", "s3", "s4"]),
    ],
)
def test_the_runs_lists_filters_narrow_the_saved_runs(acme_client, runs, query, expected):
    assert ids(acme_client.get(f"{URL}?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("format=csv", "format: Must be one of jsonl, openai."),
        ("min_cost=abc", "min_cost: Enter a number."),
        ("status=maybe", "status: "),
        ("from=yesterday", "from: "),
        ("type=Not-A-Type", "type: Not a run type."),
        ("app_id=not-a-uuid", "app_id: Must be a valid UUID."),
    ],
)
def test_invalid_values_are_a_400_naming_the_parameter(acme_client, runs, query, error):
    response = acme_client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"].startswith(error)


def test_a_bad_format_and_a_bad_filter_are_named_together(acme_client, runs):
    error = acme_client.get(f"{URL}?format=xml&min_latency_s=x").json()["error"]
    assert "format: " in error and "min_latency_s: " in error


# --- access --------------------------------------------------------------------------------------


def test_another_organizations_app_is_a_404(acme_client, runs, globex_app):
    ingest(globex_app, llm("g1", input=CHAT, output="globex"), *saved("g1"))
    response = acme_client.get(f"{URL}?app_id={globex_app.public_id}")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "globex" not in response.content.decode()
    assert acme_client.get(f"{URL}?app_id={globex_app.public_id}&format=openai").status_code == 404


def test_a_key_exports_only_its_organizations_runs(acme_client, globex_client, runs, globex_app):
    ingest(globex_app, llm("g1", input=CHAT, output="globex"), *saved("g1"))
    assert ids(globex_client.get(URL)) == ["g1"]
    assert "globex" not in json.dumps(lines(acme_client.get(URL)))


def test_a_key_exports_another_app_of_its_organization(acme_client, acme, runs):
    sibling = AppFactory(organization=acme, name="Sibling", slug="sibling")
    ingest(sibling, llm("x1"), *saved("x1"))
    response = acme_client.get(f"{URL}?app_id={sibling.public_id}")
    assert ids(response) == ["x1"]
    assert response["Content-Disposition"] == 'attachment; filename="sibling-saved.jsonl"'


def test_a_logged_in_user_exports_their_current_app(client, alice, bob, runs, globex_app):
    client.force_login(alice)
    assert ids(client.get(URL)) == ["s1", "s2", "s3", "s4"]
    assert client.get(f"{URL}?app_id={globex_app.public_id}").status_code == 404


def test_anonymous_callers_are_refused(client, runs):
    response = client.get(URL)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert client.get(f"{URL}?format=openai").status_code == 401


def test_a_user_without_apps_gets_a_404(client, db):
    client.force_login(UserFactory(username="loner"))
    assert client.get(URL).status_code == 404


def test_the_trailing_slash_works_too(acme_client, runs):
    assert ids(acme_client.get(f"{URL}/")) == ["s1", "s2", "s3", "s4"]
    assert reverse("dataset-export") == URL


def test_an_html_accept_header_still_gets_the_file_and_json_errors(acme_client, runs):
    assert ids(acme_client.get(URL, HTTP_ACCEPT="text/html")) == ["s1", "s2", "s3", "s4"]
    response = acme_client.get(f"{URL}?format=csv", HTTP_ACCEPT="text/html")
    assert response.status_code == 400 and response.json()["error"].startswith("format: ")


# --- openai --------------------------------------------------------------------------------------


def test_openai_writes_chat_runs_as_fine_tuning_examples_and_counts_the_rest(acme_client, runs):
    response = acme_client.get(f"{URL}?format=openai")
    assert response["Content-Disposition"] == 'attachment; filename="support-bot-saved-openai.jsonl"'
    assert response[datasets.SKIPPED_HEADER] == "2"  # s2 (a plain prompt) and s3 (a tool's dict)
    assert lines(response) == [
        {"messages": [*CHAT, {"role": "assistant", "content": "It ships today."}]},
        {"messages": [*CHAT, {"role": "assistant", "content": "Tomorrow."}]},
    ]


def test_openai_takes_the_filters_and_counts_only_what_they_select(acme_client, runs):
    response = acme_client.get(f"{URL}?format=openai&type=llm")
    assert response[datasets.SKIPPED_HEADER] == "1" and len(lines(response)) == 2
    response = acme_client.get(f"{URL}?format=openai&agent=support")
    assert response[datasets.SKIPPED_HEADER] == "0" and len(lines(response)) == 2


def test_openai_keeps_the_tools_offered_and_a_tool_calling_answer(acme_client, acme_app):
    tools = [{"type": "function", "function": {"name": "track", "parameters": {}}}]
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    ingest(acme_app, llm("t1", input={"messages": CHAT, "tools": tools}, output=call), *saved("t1"))
    response = acme_client.get(f"{URL}?format=openai")
    assert lines(response) == [{"messages": [*CHAT, call], "tools": tools}]
    assert response[datasets.SKIPPED_HEADER] == "0"


MESSAGE = {"role": "user", "content": "hi"}
SHAPES = [
    # (input, output, fits)
    ([MESSAGE], "hello", True),
    ({"messages": [MESSAGE]}, "hello", True),
    ([MESSAGE], {"role": "assistant", "content": "hello"}, True),
    ([MESSAGE], {"content": "hello", "finish_reason": "stop"}, True),
    ([MESSAGE], {"role": "assistant", "content": None, "tool_calls": []}, True),
    ([MESSAGE], "", True),
    ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "ok", True),
    ([{"role": "assistant", "content": None}, MESSAGE], "ok", True),
    ([MESSAGE], None, False),
    ([MESSAGE], ["hello"], False),
    ([MESSAGE], 42, False),
    ([MESSAGE], {"text": "hello"}, False),
    ([MESSAGE], {"role": 1, "content": "hello"}, False),
    ([MESSAGE], {"role": None, "content": "hello"}, False),
    ([MESSAGE], {"content": 5}, False),
    ([MESSAGE], {"content": {"nested": 1}}, False),
    (None, "hello", False),
    ("hi", "hello", False),
    ([], "hello", False),
    ({"messages": []}, "hello", False),
    ({"messages": '[{"role": "user", "content": "hi"}]'}, "hello", False),
    ({"prompt": "hi"}, "hello", False),
    (["hi"], "hello", False),
    ([MESSAGE, "hi"], "hello", False),
    ([MESSAGE, 3], "hello", False),
    ([[MESSAGE]], "hello", False),
    ([{"role": "user"}], "hello", False),
    ([{"content": "hi"}], "hello", False),
    ([{"role": 7, "content": "hi"}], "hello", False),
    ([{"role": "user", "content": 7}], "hello", False),
    ([{"role": "user", "content": {"a": 1}}], "hello", False),
    ([{"role": "user", "content": True}], "hello", False),
    ({"messages": [MESSAGE], "tools": "not a list"}, "hello", True),
    (42, "hello", False),
    (True, "hello", False),
]


def test_the_database_and_python_agree_on_what_fits(acme_app):
    """ChatShaped (SQL, for the count and the pages) and chat_example (Python, the line) are one rule."""
    events = [llm(f"shape{i}", input=inp, output=out) for i, (inp, out, _) in enumerate(SHAPES)]
    ingest(acme_app, *events)
    fits_in_sql = dict(Run.objects.for_app(acme_app).annotate(fits=ChatShaped()).values_list("run_id", "fits"))
    stored = {run.run_id: run for run in Run.objects.for_app(acme_app)}
    for i, (inp, out, fits) in enumerate(SHAPES):
        run = stored[f"shape{i}"]
        assert (chat_example(run.input, run.output) is not None) is fits, (inp, out)
        assert bool(fits_in_sql[f"shape{i}"]) is fits, ("sql", inp, out)


def test_the_skipped_header_counts_exactly_the_runs_left_out(acme_client, acme_app, monkeypatch):
    monkeypatch.setattr(datasets, "PAGE_SIZE", 2)
    events = [llm(f"shape{i}", input=inp, output=out) for i, (inp, out, _) in enumerate(SHAPES)]
    ingest(acme_app, *events, *saved(*(f"shape{i}" for i in range(len(SHAPES)))))
    response = acme_client.get(f"{URL}?format=openai")
    fitting = sum(fits for _, _, fits in SHAPES)
    assert len(lines(response)) == fitting
    assert int(response[datasets.SKIPPED_HEADER]) == len(SHAPES) - fitting


# --- streaming ----------------------------------------------------------------------------------


def test_pages_are_keyset_pages_in_id_order(acme_client, acme_app, monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(datasets, "PAGE_SIZE", 2)
    run_ids = [f"p{n}" for n in range(7)]
    ingest(acme_app, *(llm(run_id, input=CHAT, output="a") for run_id in reversed(run_ids)))
    ingest(acme_app, *saved(*run_ids), llm("not-saved"))
    in_id_order = list(Run.objects.for_app(acme_app).filter(saved=True).order_by("id").values_list("run_id", flat=True))
    response = acme_client.get(URL)
    # The body: 4 pages of runs (2, 2, 2, 1), each with its feedback.
    with django_assert_num_queries(8):
        assert ids(response) == in_id_order
    response = acme_client.get(f"{URL}?format=openai")
    with django_assert_num_queries(4):  # no feedback query for openai
        assert len(lines(response)) == 7


def test_the_request_itself_is_a_fixed_number_of_queries(acme_client, runs, django_assert_num_queries):
    acme_client.get(URL)
    with django_assert_num_queries(2):  # the key, the largest id (and skipped count)
        response = acme_client.get(f"{URL}?format=openai&agent=support")
    lines(response)


def test_runs_saved_after_the_export_began_are_not_in_it(acme_client, runs, monkeypatch):
    monkeypatch.setattr(datasets, "PAGE_SIZE", 1)
    response = acme_client.get(f"{URL}?format=openai")
    ingest(runs, llm("late", input=CHAT, output="late"), *saved("late"))
    assert len(lines(response)) == 2 and response[datasets.SKIPPED_HEADER] == "2"


def test_1200_saved_runs_stream_each_once_in_order_in_pages_of_500(acme_client, acme_app, django_assert_num_queries):
    assert datasets.PAGE_SIZE == 500
    ingest(acme_app, *(llm(f"b{n:04}", input=CHAT, output=f"answer {n}") for n in range(1200)))
    ingest(acme_app, *saved(*(f"b{n:04}" for n in range(1200))))
    response = acme_client.get(URL)
    chunks = []
    with django_assert_num_queries(6):  # 3 pages (500, 500, 200), each with its feedback
        chunks = list(response.streaming_content)
    assert len(chunks) == 3
    found = [json.loads(line)["run_id"] for chunk in chunks for line in chunk.splitlines()]
    assert found == [f"b{n:04}" for n in range(1200)]
    response = acme_client.get(f"{URL}?format=openai")
    examples = lines(response)
    assert [e["messages"][-1]["content"] for e in examples] == [f"answer {n}" for n in range(1200)]
    assert response[datasets.SKIPPED_HEADER] == "0"


def test_a_gzip_client_gets_the_stream_compressed(acme_client, runs):
    import gzip

    response = acme_client.get(URL, HTTP_ACCEPT_ENCODING="gzip")
    assert response.streaming and response["Content-Encoding"] == "gzip"
    body = gzip.decompress(b"".join(response.streaming_content))
    assert [json.loads(line)["run_id"] for line in body.splitlines()] == ["s1", "s2", "s3", "s4"]


# --- saved_at --------------------------------------------------------------------------------


def test_a_saved_event_sets_saved_at_and_merges_keep_it(acme_app):
    ingest(acme_app, llm("r1"), *saved("r1"))
    run = Run.objects.get(run_id="r1")
    assert run.saved and run.saved_at is not None
    ingest(acme_app, {"name": "llm_end", "run_id": "r1", "output": "later"})  # a merge rewrites the row
    assert Run.objects.get(run_id="r1").saved_at == run.saved_at


def test_a_saved_event_before_its_run_sets_saved_at_when_the_run_arrives(acme_app):
    ingest(acme_app, *saved("early"))
    assert not Run.objects.filter(run_id="early").exists()
    ingest(acme_app, llm("early"))
    run = Run.objects.get(run_id="early")
    assert run.saved and run.saved_at is not None


def test_an_unsaved_run_has_no_saved_at(acme_app):
    ingest(acme_app, llm("r1"))
    assert Run.objects.get(run_id="r1").saved_at is None


def test_saving_from_the_page_sets_saved_at_and_unsaving_clears_it(client, alice, acme_app):
    ingest(acme_app, llm("r1"))
    client.force_login(alice)
    url = f"{reverse('run-save', args=['r1'])}?app={acme_app.public_id}"
    assert client.post(url, {"saved": "1"}).status_code == 302
    first = Run.objects.get(run_id="r1").saved_at
    assert first is not None
    client.post(url, {"saved": "1"})  # saving again keeps when it was saved
    assert Run.objects.get(run_id="r1").saved_at == first
    client.post(url, {"saved": "0"})
    run = Run.objects.get(run_id="r1")
    assert not run.saved and run.saved_at is None


# --- the LLM Calls page's download links --------------------------------------------------------


def export_links(response) -> dict[str, str]:
    body = response.content.decode()
    found = re.findall(r'<a href="(/api/datasets/export\?[^"]+)" download>', body)
    return {parse_qs(urlsplit(html.unescape(url)).query)["format"][0]: html.unescape(url) for url in found}


def test_the_calls_page_offers_the_export_of_the_saved_runs_it_lists(client, alice, runs):
    recent = datetime.now(UTC).isoformat()
    ingest(runs, llm("new", when=recent, input=CHAT, output="x", metadata={"agent": "support"}), *saved("new"))
    client.force_login(alice)
    response = client.get("/?saved=true&agent=support&range=7d&ordering=-cost&live=1")
    links = export_links(response)
    assert set(links) == {"jsonl", "openai"}
    query = parse_qs(urlsplit(links["jsonl"]).query)
    assert query["app_id"] == [str(runs.public_id)] and query["agent"] == ["support"]
    assert query["type"] == ["llm"]  # the page's default type, said explicitly
    assert "from" in query  # the range preset, as the page resolved it
    assert not {"app", "range", "live", "ordering", "saved", "cursor"} & set(query)
    # The links answer what the page shows (a session works like a key).
    assert ids(client.get(links["jsonl"])) == ["new"]
    links = export_links(client.get("/?saved=1&agent=support"))
    assert ids(client.get(links["jsonl"])) == ["s1", "s4", "new"]
    response = client.get(links["openai"])
    assert len(lines(response)) == 3 and response[datasets.SKIPPED_HEADER] == "0"


def test_every_type_on_the_page_is_every_type_in_the_export(client, alice, runs):
    client.force_login(alice)
    links = export_links(client.get("/?saved=true&type="))
    assert ids(client.get(links["jsonl"])) == ["s1", "s2", "s3", "s4"]


def test_the_link_follows_the_filters_in_htmx_swaps(client, alice, runs):
    client.force_login(alice)
    response = client.get("/?saved=true&model=claude", HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="calls-filters")
    assert ids(client.get(export_links(response)["jsonl"])) == ["s4"]


@pytest.mark.parametrize("query", ["", "saved=false", "saved=true&agent=nobody", "saved=true&min_cost=x"])
def test_no_link_without_saved_runs_listed(client, alice, runs, query):
    client.force_login(alice)
    assert export_links(client.get(f"/?{query}")) == {}


def test_the_migration_gives_runs_saved_before_it_a_saved_at(acme_app):
    from django.apps import apps

    backfill = importlib.import_module("apps.tracing.migrations.0012_run_saved_at").backfill_saved_at
    ingest(acme_app, llm("by-event"), llm("by-page"), llm("unsaved"), *saved("by-event"))
    Run.objects.filter(run_id="by-page").update(saved=True)
    Run.objects.update(saved_at=None)
    backfill(apps, None)
    event = Event.objects.get(run_id="by-event", name="saved")
    stored = {run.run_id: run for run in Run.objects.all()}
    assert stored["by-event"].saved_at == event.received_at
    assert stored["by-page"].saved_at == stored["by-page"].updated_at
    assert stored["unsaved"].saved_at is None
