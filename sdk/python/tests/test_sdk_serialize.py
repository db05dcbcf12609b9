"""Sanitizing values into JSON the server accepts, and shrinking oversized events."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import uuid
from collections import namedtuple

import pytest

import flowxobservatory as fo
from flowxobservatory.serialize import dumps, dumps_fast, fit_event, iso_timestamp, to_jsonable


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


class PydanticLike:
    """Quacks like a pydantic v2 model."""

    def model_dump(self, mode: str = "python") -> dict:
        return {"name": "model", "mode": mode}


class ArrayLike:
    """Quacks like a numpy array."""

    def tolist(self) -> list:
        return [1, 2, 3]


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


Pair = namedtuple("Pair", "left right")


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def test_it_converts_common_non_json_values():
    moment = dt.datetime(2026, 5, 29, 8, 42, 11, 123456, tzinfo=dt.timezone.utc)
    value = {
        "when": moment,
        "day": dt.date(2026, 5, 29),
        "span": dt.timedelta(seconds=1.5),
        "id": uuid.UUID(int=1),
        "price": decimal.Decimal("1.10"),
        "color": Color.RED,
        "point": Point(1, 2.5),
        "model": PydanticLike(),
        "array": ArrayLike(),
        "pair": Pair(1, 2),
        "tags": {"b", "a"},
        "frozen": frozenset({3}),
        "tuple": (1, 2),
        "blob": b"\x00\x01\x02",
        "object": object(),
        "broken": BrokenRepr(),
        "error": ValueError("boom"),
        3: "int key",
        ("t", 1): "tuple key",
    }
    out = to_jsonable(value)
    json.dumps(out, allow_nan=False)  # valid strict JSON
    assert out["when"] == "2026-05-29T08:42:11.123456+00:00"
    assert out["day"] == "2026-05-29"
    assert out["span"] == 1.5
    assert out["id"] == "00000000-0000-0000-0000-000000000001"
    assert out["price"] == "1.10"
    assert out["color"] == "red"
    assert out["point"] == {"x": 1, "y": 2.5}
    assert out["model"] == {"name": "model", "mode": "json"}
    assert out["array"] == [1, 2, 3]
    assert out["pair"] == {"left": 1, "right": 2}
    assert out["tags"] == ["a", "b"]
    assert out["frozen"] == [3]
    assert out["tuple"] == [1, 2]
    assert out["blob"] == "<bytes: 3 bytes>"
    assert out["object"].startswith("<object object at")
    assert out["broken"] == "<unrepresentable BrokenRepr>"
    assert out["error"] == {"type": "ValueError", "message": "boom"}
    assert out["3"] == "int key"
    assert out["('t', 1)"] == "tuple key"


def test_nan_and_infinity_become_null():
    out = to_jsonable({"nan": math.nan, "inf": math.inf, "neg": -math.inf, "ok": 1.5})
    assert out == {"nan": None, "inf": None, "neg": None, "ok": 1.5}


def test_nul_characters_are_replaced_in_strings_and_keys():
    out = to_jsonable({"k\x00ey": ["a\x00b", {"\x00": "\x00"}]})
    assert out == {"k\ufffdey": ["a\ufffdb", {"\ufffd": "\ufffd"}]}
    assert "\\u0000" not in dumps(out).decode()


def test_nesting_is_capped():
    value: list = []
    node = value
    for _ in range(200):
        node.append([])
        node = node[0]
    out = to_jsonable(value, max_depth=32)
    assert depth(out) <= 32
    assert "max depth 32 exceeded" in json.dumps(out)


def test_cycles_do_not_recurse_forever():
    loop: dict = {"name": "loop"}
    loop["self"] = loop
    out = to_jsonable(loop)
    assert out == {"name": "loop", "self": "[circular reference: dict]"}


def test_huge_strings_are_cut_with_a_marker():
    out = to_jsonable("x" * 50, max_chars=10)
    assert out == "x" * 10 + "…[truncated by flowxobservatory: 40 more chars]"


def test_lone_surrogates_do_not_break_encoding():
    assert dumps({"s": "bad \udc80 text"}) == b'{"s":"bad ? text"}'


def test_fit_event_shrinks_the_largest_payload_field_only():
    event = {
        "id": "e1",
        "name": "tool_start",
        "run_id": "r1",
        "run_name": "big",
        "input": {"text": "y" * 50_000},
        "metadata": {"agent": "bot"},
        "output": "small",
    }
    data, truncated = fit_event(event, 5_000)
    assert truncated
    assert len(data) <= 5_000
    parsed = json.loads(data)
    assert parsed["input"].startswith('{"text":"yyy')
    assert parsed["input"].endswith("…[truncated by flowxobservatory: 50011 bytes]")
    assert parsed["metadata"] == {"agent": "bot"}
    assert parsed["output"] == "small"
    assert (parsed["id"], parsed["run_id"], parsed["name"]) == ("e1", "r1", "tool_start")


def test_fit_event_leaves_small_events_alone():
    event = {"name": "x", "input": "é" * 10}
    data, truncated = fit_event(event, 1_000)
    assert not truncated
    assert json.loads(data) == {"name": "x", "input": "é" * 10}


def test_fit_event_handles_multibyte_text():
    event = {"name": "x", "input": "日本語" * 10_000, "output": "€" * 10_000}
    data, truncated = fit_event(event, 4_000)
    assert truncated
    assert len(data) <= 4_000
    json.loads(data)


def test_iso_timestamps_are_utc_with_microseconds_and_z():
    assert iso_timestamp(0.25) == "1970-01-01T00:00:00.250000Z"


def test_decorated_functions_with_unserializable_arguments_are_reported(sdk, flushed, find):
    @fo.tool("odd")
    def odd(*values, **named):
        return {"nan": math.nan, "set": {1}}

    odd(object(), {1, 2}, dt.datetime(2026, 1, 1), b"bytes", math.nan, "nul\x00", key="\x00")
    start = find(flushed(), "tool_start")
    values = start["input"]["values"]
    assert values[0].startswith("<object object at")
    assert values[1:] == [[1, 2], "2026-01-01T00:00:00", "<bytes: 5 bytes>", None, "nul\ufffd"]
    assert start["input"]["named"] == {"key": "\ufffd"}
    assert find(flushed(), "tool_end")["output"] == {"nan": None, "set": [1]}


def test_snapshot_mode_captures_input_before_later_mutation(server, setup_sdk, flushed, find):
    setup_sdk(server.url, snapshot=True, flush_interval=60)

    @fo.tool
    def record(items):
        items.append("added inside")
        return len(items)

    items = ["original"]
    record(items)
    items.append("added after")
    assert find(flushed(), "tool_start")["input"] == {"items": ["original"]}


@pytest.mark.parametrize("option", ["capture_input", "capture_output"])
def test_capture_can_be_turned_off(server, setup_sdk, flushed, find, option):
    setup_sdk(server.url, **{option: False})

    @fo.tool
    def secret(password):
        return "token"

    secret("hunter2")
    events = flushed()
    start, end = find(events, "tool_start"), find(events, "tool_end")
    if option == "capture_input":
        assert "input" not in start
        assert end["output"] == "token"
    else:
        assert start["input"] == {"password": "hunter2"}
        assert "output" not in end


@pytest.mark.parametrize(
    "value",
    [
        {"nan": math.nan},
        {"k\x00": 1},
        {"v": "a\x00"},
        {(1, 2): "tuple key"},
        {"deep": [[[[[[1]]]]]]},
        {"long": "x" * 100},
    ],
)
def test_fast_encoding_defers_to_the_full_walk_when_cleaning_is_needed(value):
    assert dumps_fast(value, max_depth=5, max_chars=50) is None


def test_fast_encoding_handles_plain_events_and_unknown_objects():
    data = dumps_fast(
        {"input": {"when": dt.date(2026, 1, 2), "tags": {"a"}, "n": 1}, "ok": True},
        max_depth=32,
        max_chars=1_000,
    )
    assert json.loads(data) == {"input": {"when": "2026-01-02", "tags": ["a"], "n": 1}, "ok": True}


def test_every_event_path_yields_the_same_keys_for_primitive_keys():
    value = {2: "a", True: "b", None: "c", 1.5: "d"}
    assert json.loads(dumps_fast(value, max_depth=5, max_chars=100)) == to_jsonable(value)
