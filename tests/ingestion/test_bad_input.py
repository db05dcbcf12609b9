"""Bad input never yields a 500 or a half-written batch: each bad event gets an error naming the field."""

import orjson
import pytest

from apps.tracing.models import Event, Run
from tests.helpers import post_raw, report

GOOD = {"name": "chain_start", "run_id": "good", "timestamp": "2026-05-29T08:00:00Z"}


def bad_event_error(client, event: dict) -> str:
    """Report the bad event between two good ones; return its error, checking the good ones were stored."""
    response = report(client, GOOD, event, {**GOOD, "run_id": "good2"}, expect=207)
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 1
    assert [e["index"] for e in body["errors"]] == [1]
    assert set(Run.objects.values_list("run_id", flat=True)) == {"good", "good2"}
    assert Event.objects.count() == 2
    return body["errors"][0]["error"]


def nested(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


WRONG_TYPES = [
    ({"name": 42}, "name: expected a string"),
    ({"name": None, "run_id": "x"}, "name: required"),
    ({"name": "chain_start", "run_id": 12}, "run_id: expected a string"),
    ({"name": "chain_start", "run_id": ["x"]}, "run_id: expected a string"),
    ({"name": "chain_start", "run_id": "x", "parent_run_id": {}}, "parent_run_id: expected a string"),
    ({"name": "chain_start", "run_id": "x", "type": 3}, "type: expected a string"),
    ({"name": "chain_start", "run_id": "x", "type": "Not A Word"}, "type: must be a short lowercase word"),
    ({"name": "chain_start", "run_id": "x", "timestamp": 1717000000}, "timestamp: expected an ISO 8601 string"),
    ({"name": "chain_start", "run_id": "x", "app_id": 5}, "app_id: expected a string"),
    ({"name": "chain_start", "run_id": "x", "metadata": "m"}, "metadata: expected an object"),
    ({"name": "chain_start", "run_id": "x", "metadata": [1]}, "metadata: expected an object"),
    ({"name": "chain_start", "run_id": "x", "metadata": {"agent": 1}}, "metadata.agent: expected a string"),
    ({"name": "chain_start", "run_id": "x", "metadata": {"user_email": []}}, "user_email: expected a string"),
    ({"name": "chain_start", "run_id": "x", "metadata": {"user_props": "p"}}, "user_props: expected an object"),
    ({"name": "chain_start", "run_id": "x", "metadata": {"thread_id": 1.5}}, "thread_id: expected a string"),
    ({"name": "llm_end", "run_id": "x", "model": 4}, "model: expected a string"),
    ({"name": "llm_end", "run_id": "x", "prompt_tokens": "10"}, "prompt_tokens: expected a non-negative integer"),
    ({"name": "llm_end", "run_id": "x", "completion_tokens": 1.5}, "completion_tokens: expected a non-negative"),
    ({"name": "llm_end", "run_id": "x", "total_tokens": True}, "total_tokens: expected a non-negative integer"),
    ({"name": "llm_end", "run_id": "x", "metadata": {"prompt_tokens": []}}, "prompt_tokens: expected a non-negative"),
    ({"name": "chain_start", "run_id": "x", "tags": "a,b"}, "tags: expected a list of strings"),
    ({"name": "chain_start", "run_id": "x", "tags": ["a", 1]}, "tags[1]: expected a string"),
    ({"name": "chain_start", "run_id": "x", "metadata": {"tags": {}}}, "metadata.tags: expected a list"),
    ({"name": "chain_end", "run_id": "x", "status": "done"}, "status: must be 'success' or 'error'"),
    ({"name": "chain_end", "run_id": "x", "error": 5}, "error: expected a string or an object"),
    ({"name": "chain_end", "run_id": "x", "error": {"message": 5}}, "error.message: expected a string"),
    ({"name": "chain_start", "run_id": "x", "run_name": {}}, "run_name: expected a string"),
    ({"name": "chain_start", "run_id": "x", "id": 1.5}, "id: expected a string"),
    ({"name": "llm_call", "run_id": "x", "latency_s": "1"}, "latency_s: expected a number"),
    ({"name": "llm_call", "run_id": "x", "duration_ms": -5}, "duration_ms: must not be negative"),
    ({"name": "llm_call", "run_id": "x", "started_at": "soon"}, "started_at: 'soon' is not an ISO 8601"),
    ({"name": "saved"}, "run_id: required for saved events"),
    ({"name": "chat", "role": "robot", "content": "x"}, "role: must be one of"),
    ({"name": "chat", "role": "user", "message_id": 5}, "message_id: expected a string"),
    ({"name": "feedback", "run_id": "x", "rating": 5}, "rating: must be 'positive' or 'negative'"),
    ({"name": "feedback", "run_id": "x", "rating": "meh"}, "rating: must be 'positive' or 'negative'"),
    ({"name": "feedback", "rating": "positive"}, "run_id: feedback needs a run_id or a message_id"),
    ({"name": "feedback", "run_id": "x", "rating": "positive", "comment": 5}, "comment: expected a string"),
    ({"name": "feedback", "run_id": "x", "rating": "positive", "score": 5}, "score: expected an object"),
    ({"name": "feedback", "run_id": "x", "rating": "positive", "score": {"name": 5}}, "score.name: expected a string"),
    (
        {"name": "feedback", "run_id": "x", "rating": "positive", "score": {"value": [1]}},
        "score.value: expected a number, a boolean or a string, got a list",
    ),
    (
        {"name": "feedback", "run_id": "x", "rating": "positive", "score": {"value": "x" * 201}},
        "score.value: longer than 200 characters",
    ),
    ("just a string", "event: expected an object"),
    ([1, 2], "event: expected an object"),
    (None, "event: expected an object"),
]


@pytest.mark.parametrize(
    "event,message", WRONG_TYPES, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(WRONG_TYPES)]
)
def test_a_wrong_type_is_a_per_event_error_naming_the_field(acme_client, event, message):
    assert message in bad_event_error(acme_client, event)


@pytest.mark.parametrize(
    "event,message",
    [
        ({"name": "chain_start", "run_id": "x\u0000y"}, "run_id: contains a NUL"),
        ({"name": "chain_start", "run_id": "x", "input": {"text": "a\u0000b"}}, "input.text: contains a NUL"),
        ({"name": "chain_start", "run_id": "x", "metadata": {"k\u0000": 1}}, "contains a NUL"),
        ({"name": "chain_start", "run_id": "x", "output": ["ok", ["\u0000"]]}, "output[1][0]: contains a NUL"),
    ],
    ids=["run_id", "input", "key", "list"],
)
def test_nul_characters_anywhere_are_rejected(acme_client, event, message):
    assert message in bad_event_error(acme_client, event)


def test_nesting_deeper_than_the_limit_is_rejected(acme_client):
    assert "nested deeper than 64 levels" in bad_event_error(acme_client, {**GOOD, "run_id": "x", "input": nested(80)})


def test_nesting_within_the_limit_is_stored(acme_client):
    report(acme_client, {**GOOD, "run_id": "x", "input": nested(50)})
    assert Run.objects.get(run_id="x").input == nested(50)


def test_a_multi_megabyte_string_is_rejected_alone(acme_client):
    big = {**GOOD, "run_id": "x", "output": "y" * 2_000_000}
    assert "event: larger than 1048576 bytes" in bad_event_error(acme_client, big)


@pytest.mark.parametrize("value", [-1, 2**53, 2**63, 2**64 + 5, 10**30])
def test_negative_or_enormous_token_counts_are_rejected(acme_client, value):
    error = bad_event_error(acme_client, {"name": "llm_end", "run_id": "x", "prompt_tokens": value})
    assert error.startswith("prompt_tokens: ")


@pytest.mark.parametrize(
    "timestamp,message",
    [
        ("yesterday", "is not an ISO 8601 timestamp"),
        ("2026-13-45T00:00:00Z", "is not an ISO 8601 timestamp"),
        ("0001-01-01T00:00:00Z", "out of range"),
        ("9999-12-31T23:59:59Z", "out of range"),
        ("1970-01-01T00:00:00Z", "out of range"),
        # The offset moves these past year 9999 and before year 1: out of range, not an OverflowError.
        ("9999-12-31T23:59:59-01:00", "out of range"),
        ("0001-01-01T00:00:00+01:00", "out of range"),
    ],
)
def test_unparseable_or_absurd_timestamps_are_rejected(acme_client, timestamp, message):
    assert message in bad_event_error(acme_client, {**GOOD, "run_id": "x", "timestamp": timestamp})


@pytest.mark.parametrize("started_at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_started_at_past_the_calendar_is_rejected(acme_client, started_at):
    error = bad_event_error(acme_client, {"name": "llm_call", "run_id": "x", "started_at": started_at})
    assert error.startswith("started_at: ") and "out of range" in error


def test_a_run_id_over_128_characters_is_rejected(acme_client):
    assert "run_id: longer than 128" in bad_event_error(acme_client, {**GOOD, "run_id": "r" * 129})


def test_a_run_that_names_itself_as_parent_is_rejected(acme_client):
    assert "own parent" in bad_event_error(acme_client, {**GOOD, "run_id": "x", "parent_run_id": "x"})


def test_a_run_that_names_its_descendant_as_parent_is_rejected(acme_client):
    report(
        acme_client,
        {"name": "chain_start", "run_id": "a"},
        {"name": "chain_start", "run_id": "b", "parent_run_id": "a"},
        {"name": "chain_start", "run_id": "c", "parent_run_id": "b"},
    )
    response = report(acme_client, {"name": "chain_end", "run_id": "a", "parent_run_id": "c"}, expect=207)
    assert "descendant" in response.json()["errors"][0]["error"]
    assert Run.objects.get(run_id="a").parent_run_id is None


def test_a_cycle_within_one_batch_is_rejected(acme_client):
    response = report(
        acme_client,
        {"name": "chain_start", "run_id": "a", "parent_run_id": "b"},
        {"name": "chain_start", "run_id": "b", "parent_run_id": "a"},
        expect=207,
    )
    assert response.json()["errors"][0]["index"] == 1
    assert dict(Run.objects.values_list("run_id", "parent_run_id")) == {"a": "b"}


def test_nan_and_infinity_are_per_event_errors(acme_client):
    body = (
        b'{"events": [{"name": "chain_start", "run_id": "good"}, {"name": "chain_start", "run_id": "x", "input": NaN},'
        b' {"name": "chain_start", "run_id": "y", "output": {"v": -Infinity}}]}'
    )
    response = post_raw(acme_client, body)
    assert response.status_code == 207
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [1, 2]
    assert "input: NaN and Infinity are not valid JSON" in errors[0]["error"]
    assert "output.v: NaN" in errors[1]["error"]
    assert list(Run.objects.values_list("run_id", flat=True)) == ["good"]


def test_a_lone_surrogate_is_a_per_event_error(acme_client):
    body = (
        b'{"events": [{"name": "chain_start", "run_id": "good"},'
        b' {"name": "chain_start", "run_id": "x", "input": "\\ud800"}]}'
    )
    response = post_raw(acme_client, body)
    assert response.status_code == 207
    assert "input: contains an invalid unicode surrogate" in response.json()["errors"][0]["error"]


def test_a_5000_digit_integer_is_a_per_event_error(acme_client):
    body = (
        b'{"events": [{"name": "chain_start", "run_id": "good"}, {"name": "chain_start", "run_id": "x", "input": {"n": '
        + b"9" * 5000
        + b"}}]}"
    )
    response = post_raw(acme_client, body)
    assert response.status_code == 207, response.content
    assert response.json()["errors"] == [{"index": 1, "error": "input.n: integer out of the 64-bit range"}]
    assert list(Run.objects.values_list("run_id", flat=True)) == ["good"]


def test_invalid_utf8_is_named_as_such(acme_client):
    response = post_raw(acme_client, b'{"events": [{"name": "chain_start", "run_id": "\xff"}]}')
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"] and "surrogate" not in response.json()["error"]


def test_unknown_fields_are_kept(acme_client):
    report(acme_client, {**GOOD, "run_id": "x", "whatever": {"a": 1}})
    assert Event.objects.get(run_id="x").payload["whatever"] == {"a": 1}


def test_a_batch_of_only_bad_events_is_207_and_writes_nothing(acme_client):
    response = report(acme_client, {"name": 1}, {"name": "chain_start"}, expect=207)
    assert response.json()["accepted"] == 0 and response.json()["rejected"] == 2
    assert not Event.objects.exists()


def test_html_in_values_is_stored_verbatim(acme_client):
    report(acme_client, {**GOOD, "run_id": "x", "output": "<script>alert(1)</script>"})
    assert Run.objects.get(run_id="x").output == "<script>alert(1)</script>"


def test_every_bad_body_is_answered_without_a_500(acme_client):
    for body in [b"", b"{", b"null", b'{"events": null}', b'{"events": [null]}', orjson.dumps({"events": [[]]})]:
        assert post_raw(acme_client, body).status_code in (207, 400)
