"""POST /api/report: status codes, limits and the response shape (SPEC §2 table)."""

import gzip
import zlib

import orjson
import pytest
from django.db import OperationalError

from apps.tenancy.models import ApiKey
from apps.tracing.models import Event, Run
from tests.conftest import key_client
from tests.helpers import post_raw, report

EVENT = {"name": "chain_start", "run_id": "r1", "timestamp": "2026-05-29T08:00:00Z"}


def test_it_answers_200_with_counts(acme_client):
    response = report(acme_client, EVENT, {**EVENT, "run_id": "r2"})
    assert response.json() == {"accepted": 2, "rejected": 0, "errors": []}


def test_it_answers_207_and_stores_the_valid_events(acme_client):
    response = report(acme_client, EVENT, {"name": "chain_start"}, {**EVENT, "run_id": "r2"}, expect=207)
    assert response.json() == {
        "accepted": 2,
        "rejected": 1,
        "errors": [{"index": 1, "error": "run_id: required for run events"}],
    }
    assert set(Run.objects.values_list("run_id", flat=True)) == {"r1", "r2"}


@pytest.mark.parametrize(
    "body,message",
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b'"events"', "must be a JSON object"),
        (b"{}", '"events" must be a list'),
        (b'{"events": {"name": "x"}}', '"events" must be a list'),
        (b'{"events": "x"}', '"events" must be a list'),
        (b'{"events": []}', '"events" is empty'),
        (b"\xff\xfe{}", "not valid UTF-8: byte 0xff at position 0"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
    ids=["text", "array", "number", "string", "no-events", "object", "events-string", "empty", "bad-utf8", "deep"],
)
def test_it_answers_400_for_a_body_that_is_not_a_batch(acme_client, body, message):
    response = post_raw(acme_client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Event.objects.exists()


def test_it_answers_401_without_a_valid_key(client, acme_app, db):
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer obs_nope"}, {"HTTP_AUTHORIZATION": "Basic abc"}):
        response = post_raw(client, orjson.dumps({"events": [EVENT]}), **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert "error" in response.json()
    assert not Event.objects.exists()


def test_a_revoked_key_cannot_report(acme_app):
    key, raw = ApiKey.issue(app=acme_app)
    key.revoke()
    assert post_raw(key_client(raw), orjson.dumps({"events": [EVENT]})).status_code == 401


def test_it_answers_413_over_the_body_limit(acme_client, settings):
    settings.OBSERVATORY_MAX_BODY_BYTES = 2048
    response = post_raw(acme_client, orjson.dumps({"events": [{**EVENT, "input": "x" * 3000}]}))
    assert response.status_code == 413
    assert "2048" in response.json()["error"]


def test_it_answers_413_over_the_batch_limit(acme_client, settings):
    settings.OBSERVATORY_MAX_BATCH_EVENTS = 3
    response = report(acme_client, *[{**EVENT, "run_id": f"r{n}"} for n in range(4)], expect=413)
    assert "limit of 3" in response.json()["error"]
    assert not Run.objects.exists()


def test_it_accepts_gzip_bodies(acme_client):
    response = post_raw(acme_client, orjson.dumps({"events": [EVENT]}), gzipped=True)
    assert response.status_code == 200
    assert Run.objects.filter(run_id="r1").exists()


def test_it_refuses_a_gzip_bomb_with_413(acme_client, settings):
    settings.OBSERVATORY_MAX_BODY_BYTES = 100_000
    bomb = gzip.compress(b'{"events": [{"name": "x", "input": "' + b"a" * 10_000_000 + b'"}]}')
    assert len(bomb) < 100_000
    response = acme_client.post("/api/report", bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413


def test_it_refuses_broken_gzip_and_unknown_encodings(acme_client):
    broken = acme_client.post("/api/report", b"not gzip", content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert broken.status_code == 400 and "gzip" in broken.json()["error"]
    brotli = acme_client.post("/api/report", b"{}", content_type="application/json", HTTP_CONTENT_ENCODING="br")
    assert brotli.status_code == 400 and "not supported" in brotli.json()["error"]


def test_it_accepts_deflate(acme_client):
    response = acme_client.post(
        "/api/report",
        zlib.compress(orjson.dumps({"events": [EVENT]})),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="deflate",
    )
    assert response.status_code == 200


def test_it_answers_429_with_retry_after_over_the_rate_limit(acme_client, globex_client, settings):
    settings.OBSERVATORY_RATE_LIMIT_PER_MINUTE = 2
    report(acme_client, EVENT)
    report(acme_client, EVENT)
    response = report(acme_client, EVENT, expect=429)
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "error" in response.json()
    report(globex_client, EVENT)  # the limit is per key


def test_it_answers_503_with_retry_after_and_writes_nothing_when_the_database_fails(acme_client, monkeypatch):
    from apps.tracing import services

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    # The events are inserted, then the database fails while the runs are written.
    monkeypatch.setattr(services, "_upsert_runs", database_gone)
    response = report(acme_client, EVENT, {**EVENT, "run_id": "r2"}, expect=503)
    assert response["Retry-After"] == "5"
    assert response.json() == {"error": "database unavailable, retry later"}
    assert not Event.objects.exists() and not Run.objects.exists()


def test_the_trailing_slash_form_works_too(acme_client):
    response = acme_client.post("/api/report/", orjson.dumps({"events": [EVENT]}), content_type="application/json")
    assert response.status_code == 200


def test_get_is_not_allowed(acme_client):
    assert acme_client.get("/api/report").status_code == 405
