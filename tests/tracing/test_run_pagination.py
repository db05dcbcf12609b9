"""Keyset pagination walks a list with no gaps or repeats, even while runs are being inserted."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import ingest

BASE = datetime(2026, 5, 1, tzinfo=UTC)


def calls(prefix: str, count: int, *, start: datetime = BASE, **fields) -> list[dict]:
    return [
        {"name": "llm_call", "run_id": f"{prefix}{n}", "timestamp": (start + timedelta(seconds=n // 3)).isoformat(),
         "latency_s": (n * 7) % 11, "total_tokens": (n * 13) % 17, "model": "m", **fields}
        for n in range(count)
    ]  # fmt: skip


def walk(client, query: str, on_page=None) -> list[str]:
    seen, url, pages = [], f"/api/run/?{query}", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += [run["run_id"] for run in response.json()["results"]]
        url = response.json()["next"]
        pages += 1
        if on_page:
            on_page(pages)
    return seen


@pytest.mark.parametrize("ordering", ["-started_at", "started_at", "-latency_s", "latency_s", "-total_tokens", "cost"])
def test_a_walk_over_1000_runs_has_no_gaps_or_repeats_while_runs_arrive(acme_client, acme_app, ordering):
    ingest(acme_app, *calls("old", 1000))
    # Runs keep arriving during the walk, some sorting before and some after the cursor.
    arrivals = iter(range(1000))

    def insert_more(page: int) -> None:
        n = next(arrivals)
        ingest(acme_app, *calls(f"new{n}-", 3, start=BASE + timedelta(seconds=n * 17 % 400)))

    seen = walk(acme_client, f"limit=37&ordering={ordering}", on_page=insert_more)
    old = [run_id for run_id in seen if run_id.startswith("old")]
    assert len(old) == len(set(old)) == 1000
    assert len(seen) == len(set(seen))


def test_the_default_page_is_50_and_next_is_null_at_the_end(acme_client, acme_app):
    ingest(acme_app, *calls("r", 60))
    first = acme_client.get("/api/run/").json()
    assert len(first["results"]) == 50 and first["next"]
    second = acme_client.get(first["next"]).json()
    assert len(second["results"]) == 10 and second["next"] is None


def test_the_next_link_keeps_the_filters(acme_client, acme_app):
    ingest(acme_app, *calls("a", 5, tags=["keep"]), *calls("b", 5))
    assert sorted(walk(acme_client, "tags=keep&limit=2")) == ["a0", "a1", "a2", "a3", "a4"]


def test_a_cursor_from_another_ordering_is_refused(acme_client, acme_app):
    ingest(acme_app, *calls("r", 5))
    next_url = acme_client.get("/api/run/?limit=2").json()["next"]
    response = acme_client.get(next_url + "&ordering=-cost")
    assert response.status_code == 400 and response.json()["error"].startswith("cursor: ")


def test_a_limit_of_500_is_allowed(acme_client, acme_app):
    ingest(acme_app, *calls("r", 501))
    assert len(acme_client.get("/api/run/?limit=500").json()["results"]) == 500


def cursor(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


HUGE = 2**64 + 1
BAD_CURSORS = [
    ("-started_at", {"v": "2026-05-01T00:00:00+00:00", "id": HUGE}),
    ("-latency_s", {"v": "1.0", "id": -HUGE}),
    ("-total_tokens", {"v": str(HUGE), "id": 1}),
    ("-cost", {"v": str(10**40), "id": 1}),
    ("-cost", {"v": "NaN", "id": 1}),
    ("-cost", {"v": "sNaN", "id": 1}),
    ("cost", {"v": "Infinity", "id": 1}),
    ("-latency_s", {"v": "inf", "id": 1}),
    ("-started_at", {"v": "9999-12-31T23:59:59-01:00", "id": 1}),
    ("started_at", {"v": "0001-01-01T00:00:00+01:00", "id": 1}),
]


@pytest.mark.parametrize("ordering,payload", BAD_CURSORS)
def test_a_cursor_out_of_range_is_a_400(acme_client, acme_app, ordering, payload):
    ingest(acme_app, *calls("r", 3))
    token = cursor({"o": ordering, **payload})
    response = acme_client.get(f"/api/run/?ordering={ordering}&cursor={token}")
    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith("cursor: ")


@pytest.mark.parametrize("parameter", ["from", "to"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_date_filter_past_the_calendar_is_a_400(acme_client, acme_app, parameter, value):
    response = acme_client.get("/api/run/", {parameter: value})
    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith(f"{parameter}: ")
