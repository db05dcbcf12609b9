"""GET /api/run/: one test per filter parameter (SPEC §3), boundaries inclusive, bad values a 400."""

from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from tests.helpers import ingest


@pytest.fixture
def runs(acme_app):
    """Five runs with known values. Costs: 1K prompt tokens at $1 -> $1 per 1K tokens."""
    ModelCost.objects.create(model="acme-gpt", prompt_price=Decimal("0.01"), completion_price=Decimal("0.01"))
    ModelCost.objects.create(model="claude", prompt_price=Decimal("0.05"), completion_price=Decimal("0.05"))
    user1 = {"agent": "support", "user_id": "u1", "user_email": "u1@example.com"}
    user2 = {"agent": "sales", "user_id": "u2", "user_email": "u2@example.com"}
    ingest(
        acme_app,
        # r1: llm, 2 s, $0.01, tags x, success, saved, thread t1, a root
        {"name": "llm_call", "run_id": "r1", "timestamp": "2026-05-01T10:00:02Z", "latency_s": 2, "model": "acme-gpt",
         "prompt_tokens": 500, "completion_tokens": 500, "tags": ["x"], "metadata": {**user1, "thread_id": "t1"},
         "input": "Where is my PARCEL?", "output": "On its way"},
        {"name": "saved", "run_id": "r1"},
        # r2: llm, 8 s, $0.5, tags y, error, child of r3
        {"name": "llm_call", "run_id": "r2", "parent_run_id": "r3", "timestamp": "2026-05-02T10:00:08Z",
         "latency_s": 8, "model": "claude", "prompt_tokens": 5000, "completion_tokens": 5000, "tags": ["y"],
         "metadata": user2, "error": "rate limited", "run_name": "summarise"},
        # r3: agent, started (no end), root
        {"name": "agent_start", "run_id": "r3", "timestamp": "2026-05-03T10:00:00Z", "metadata": user2},
        # r4: tool, 4 s, tags x and z, success, child of r3
        {"name": "tool_start", "run_id": "r4", "parent_run_id": "r3", "timestamp": "2026-05-04T10:00:00Z",
         "tags": ["x", "z"], "metadata": {**user2, "thread_id": "t2"}, "input": {"q": "weather in Paris"}},
        {"name": "tool_end", "run_id": "r4", "timestamp": "2026-05-04T10:00:04Z"},
        # r5: llm, 8.5 s, no price row: $0
        {"name": "llm_call", "run_id": "r5", "timestamp": "2026-05-05T10:00:00Z", "latency_s": 8.5,
         "model": "local-llama", "total_tokens": 10, "metadata": user1},
    )  # fmt: skip


def ids(client, query: str) -> list[str]:
    response = client.get(f"/api/run/?{query}")
    assert response.status_code == 200, response.content
    return [run["run_id"] for run in response.json()["results"]]


def error(client, query: str) -> str:
    response = client.get(f"/api/run/?{query}")
    assert response.status_code == 400, response.content
    return response.json()["error"]


def test_no_filter_lists_every_run_newest_first(acme_client, runs):
    assert ids(acme_client, "") == ["r5", "r4", "r3", "r2", "r1"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("status=success", ["r5", "r4", "r1"]),
        ("status=error", ["r2"]),
        ("status=started", ["r3"]),
        ("status=timed_out", ["r3"]),
        ("type=llm", ["r5", "r2", "r1"]),
        ("type=tool", ["r4"]),
        ("model=acme-gpt", ["r1"]),
        ("model=gpt-4", []),
        ("agent=sales", ["r4", "r3", "r2"]),
        ("user_email=u1@example.com", ["r5", "r1"]),
        ("user_id=u2", ["r4", "r3", "r2"]),
        ("name=summarise", ["r2"]),
        ("name=sales", ["r3"]),
        ("min_latency_s=4", ["r5", "r4", "r2"]),
        ("max_latency_s=4", ["r4", "r1"]),
        ("min_latency_s=8&max_latency_s=8", ["r2"]),
        ("min_cost=0.01", ["r2", "r1"]),
        ("max_cost=0.01", ["r5", "r4", "r3", "r1"]),
        ("min_cost=0.5&max_cost=0.5", ["r2"]),
        ("tags=x", ["r4", "r1"]),
        ("tags=y,z", ["r4", "r2"]),
        ("tags=y&tags=z", ["r4", "r2"]),
        ("tags=nope", []),
        ("from=2026-05-03T10:00:00Z", ["r5", "r4", "r3"]),
        ("to=2026-05-03T10:00:00Z", ["r3", "r2", "r1"]),
        ("from=2026-05-02T10:00:00Z&to=2026-05-02T10:00:00Z", ["r2"]),
        ("from=2026-05-02T12:00:00%2B02:00&to=2026-05-02T12:00:00%2B02:00", ["r2"]),
        ("search=parcel", ["r1"]),
        ("search=Paris", ["r4"]),
        ("search=CLAUDE", ["r2"]),
        ("search=support", ["r5", "r1"]),
        ("saved=true", ["r1"]),
        ("saved=false", ["r5", "r4", "r3", "r2"]),
        ("parent_run_id=r3", ["r4", "r2"]),
        ("root=true", ["r5", "r3", "r1"]),
        ("root=false", ["r4", "r2"]),
        ("thread_id=t1", ["r1"]),
        ("type=llm&status=success&min_latency_s=1", ["r5", "r1"]),
        ("unknown_parameter=whatever", ["r5", "r4", "r3", "r2", "r1"]),
    ],
)
def test_each_filter(acme_client, runs, query, expected):
    assert ids(acme_client, query) == expected


COST_QUERIES = [
    "max_cost=0.01", "min_cost=0.01", "type=llm&max_cost=0.01", "model=claude&min_cost=0.01",
    "min_cost=0.005&max_cost=0.02&ordering=-latency_s", "type=llm&max_cost=0.001&ordering=total_tokens",
]  # fmt: skip


@pytest.mark.parametrize("query", COST_QUERIES)
def test_cost_bounds_list_the_same_runs_whether_few_or_many_match(acme_client, runs, query, monkeypatch):
    few = ids(acme_client, query)  # at most COST_PROBE match: listed by their ids
    assert few
    monkeypatch.setattr("apps.tracing.filters.COST_PROBE", 0)  # as if too many matched: the ordinary plan
    assert ids(acme_client, query) == few


def test_a_cost_bound_that_nothing_matches_costs_one_query_beyond_the_key(acme_client, runs, django_assert_num_queries):
    acme_client.get("/api/run/")  # the key's last_used_at is written once a minute
    # the key, then the cost probe; no match, so no runs query at all
    with django_assert_num_queries(2):
        assert ids(acme_client, "type=llm&min_cost=100") == []


def test_search_can_be_limited_to_names_agents_and_models(acme_client, acme_app, settings):
    settings.OBSERVATORY_SEARCH_CHARS_PER_FIELD = 0
    ingest(acme_app, {"name": "llm_call", "run_id": "n1", "model": "acme-gpt", "input": "Where is my parcel?",
                      "metadata": {"agent": "support"}})  # fmt: skip
    assert (ids(acme_client, "search=parcel"), ids(acme_client, "search=support")) == ([], ["n1"])
    assert ids(acme_client, "search=ACME-gpt") == ["n1"]


@pytest.mark.parametrize(
    "ordering,expected",
    [
        ("started_at", ["r1", "r2", "r3", "r4", "r5"]),
        ("-started_at", ["r5", "r4", "r3", "r2", "r1"]),
        ("-latency_s", ["r5", "r2", "r4", "r1", "r3"]),
        ("latency_s", ["r3", "r1", "r4", "r2", "r5"]),
        ("-cost", ["r2", "r1", "r5", "r4", "r3"]),
        ("cost", ["r3", "r4", "r5", "r1", "r2"]),
        ("-total_tokens", ["r2", "r1", "r5", "r4", "r3"]),
    ],
)
def test_ordering(acme_client, runs, ordering, expected):
    # Runs without a value (no latency, no tokens) sort as the smallest; ties go by id.
    assert ids(acme_client, f"ordering={ordering}") == expected


@pytest.mark.parametrize(
    "query,parameter",
    [
        ("min_cost=abc", "min_cost"),
        ("max_cost=1e", "max_cost"),
        ("min_latency_s=fast", "min_latency_s"),
        ("max_latency_s=NaNs", "max_latency_s"),
        ("status=bogus", "status"),
        ("type=LLM!", "type"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("saved=maybe", "saved"),
        ("root=yes-please", "root"),
        ("ordering=price", "ordering"),
        ("limit=100000", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("app_id=not-a-uuid", "app_id"),
        ("tags=" + ",".join(f"t{n}" for n in range(51)), "tags"),
    ],
)
def test_an_invalid_value_is_a_400_naming_the_parameter(acme_client, runs, query, parameter):
    assert error(acme_client, query).startswith(f"{parameter}: ")


def test_each_run_has_the_spec_fields(acme_client, runs, acme_app):
    run = acme_client.get("/api/run/?run_id=r1&saved=true").json()["results"][0]
    assert set(run) == {
        "run_id", "parent_run_id", "app_id", "type", "name", "agent", "status", "started_at", "ended_at",
        "latency_s", "model", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "tags", "user_id",
        "user_email", "saved", "thread_id", "input", "output", "error", "metadata",
    }  # fmt: skip
    assert run["app_id"] == str(acme_app.public_id)
    assert run["cost"] == 0.01 and run["latency_s"] == 2.0 and run["total_tokens"] == 1000
    assert run["started_at"] == "2026-05-01T10:00:00Z"


# --- the search contract: a case-insensitive substring of the run's text ------------------------

PHRASES = {
    "p1": {"input": "Refund my parcel to Paris, please", "output": "Parcel refunded. Refund id 88."},
    "p2": {"input": "Paris parcel refund", "output": "ok"},
    "p3": {"input": "please please please refund", "output": "done"},
}


@pytest.fixture
def phrases(acme_app):
    ingest(acme_app, *({"name": "chain_start", "run_id": run_id, "timestamp": f"2026-05-0{i + 1}T10:00:00Z", **fields}
                       for i, (run_id, fields) in enumerate(PHRASES.items())))  # fmt: skip


@pytest.mark.parametrize(
    "search,expected",
    [
        ("refund my parcel", ["p1"]),  # words in this order, next to each other
        ("paris parcel", ["p2"]),  # p1 has both words, not this phrase
        ("refund parcel", []),  # p1 and p2 have both words, neither in this order
        ("parcel refund", ["p2", "p1"]),  # p1: "parcel refunded"
        ("fund my par", ["p1"]),  # a phrase cut inside its first and last words
        ("PARIS, PLEASE", ["p1"]),
        ("please please", ["p3"]),  # a repeated word is kept once in the index, whole in the text
        ("please refund", ["p3"]),
        ("refund id 88", ["p1"]),
        ("parcel\nrefund", []),  # input and output are separate lines: no phrase across them...
        ("paris parcel refund\nok", ["p2"]),  # ...unless it says so
        ("refunded paris", []),
        ("  ", ["p3", "p2", "p1"]),  # blank: no search
    ],
)
def test_search_finds_the_runs_whose_text_contains_it(acme_client, phrases, search, expected):
    from urllib.parse import urlencode

    assert ids(acme_client, urlencode({"search": search})) == expected


def test_runs_written_before_words_were_kept_are_found_alike(acme_client, phrases):
    from apps.tracing.models import RunSearch

    # As tracing.0016 left them: the whole text in `text`, no `full_text`.
    for row in RunSearch.objects.all():
        RunSearch.objects.filter(pk=row.pk).update(text=row.full_text or row.text, full_text=None)
    assert ids(acme_client, "search=refund+my+parcel") == ["p1"]
    assert ids(acme_client, "search=paris+parcel") == ["p2"]
    assert ids(acme_client, "search=please+please") == ["p3"]


def test_the_index_holds_each_word_once_and_the_text_whole(acme_client, phrases):
    from apps.tracing.models import RunSearch

    search = RunSearch.objects.get(run__run_id="p3")
    assert search.text == "chain please refund done"
    assert search.full_text == "chain\nplease please please refund\ndone"
