"""Turn arbitrary Python values into JSON the server accepts, and keep events under a size cap.

The server rejects NUL characters, NaN/Infinity, nesting deeper than 64 levels and events
over 1 MiB, so everything is cleaned here. Nothing in this module raises into the caller:
a value that cannot be converted becomes a descriptive string.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import pathlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

REPLACEMENT_CHAR = "\ufffd"
TRUNCATION_MARKER = "…[truncated by flowxobservatory: {n} bytes]"
_CUT_MARKER = "…[truncated by flowxobservatory: {n} more chars]"
_REPR_MAX_CHARS = 2_000

# Fields that identify an event; shrinking them would break run assembly, so an event
# is only ever shrunk through its payload fields (input, output, metadata, error, ...).
_PROTECTED_FIELDS = frozenset(
    {
        "id",
        "name",
        "type",
        "run_id",
        "parent_run_id",
        "timestamp",
        "app_id",
        "run_name",
        "status",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_prompt_tokens",
        "latency_s",
        "role",
        "rating",
        "thread_id",
        "message_id",
    }
)


def clean_str(value: str, max_chars: int) -> str:
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT_CHAR)
    if len(value) > max_chars:
        value = value[:max_chars] + _CUT_MARKER.format(n=len(value) - max_chars)
    return value


def _safe_repr(value: Any, max_chars: int = _REPR_MAX_CHARS) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ is the host's bug, not a reason to lose the event
        text = f"<unrepresentable {type(value).__qualname__}>"
    return clean_str(text, max_chars)


def safe_str(value: Any, max_chars: int = _REPR_MAX_CHARS) -> str:
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not hide the original error
        return _safe_repr(value, max_chars)
    return clean_str(text, max_chars)


class _Sanitizer:
    """One pass over a value; ``path`` holds the ids of the containers being visited (cycles)."""

    __slots__ = ("max_chars", "max_depth", "path")

    def __init__(self, max_depth: int, max_chars: int) -> None:
        self.max_depth = max_depth
        self.max_chars = max_chars
        self.path: set[int] = set()

    def convert(self, value: Any, depth: int) -> Any:
        kind = type(value)
        # Exact-type fast path: the vast majority of values in real events.
        if kind is str:
            return clean_str(value, self.max_chars)
        if value is None or kind is bool or kind is int:
            return value
        if kind is float:
            return value if math.isfinite(value) else None
        if kind is dict or kind is list or kind is tuple:
            return self._container(value, depth)
        return self._other(value, depth)

    def _container(self, value: Any, depth: int) -> Any:
        if depth >= self.max_depth:
            return f"[max depth {self.max_depth} exceeded: {type(value).__qualname__}]"
        marker = id(value)
        if marker in self.path:
            return f"[circular reference: {type(value).__qualname__}]"
        self.path.add(marker)
        try:
            if isinstance(value, Mapping):
                # list(...) copies in one C call, so a host thread mutating the dict
                # cannot make the iteration below fail half-way.
                return {
                    self._key(key): self.convert(item, depth + 1)
                    for key, item in list(value.items())
                }
            return [self.convert(item, depth + 1) for item in list(value)]
        finally:
            self.path.discard(marker)

    def _key(self, key: Any) -> str:
        if type(key) is not str:
            if isinstance(key, enum.Enum):
                key = key.value
            if isinstance(key, str):
                key = str.__str__(key)
            elif (
                key is None
                or isinstance(key, bool | int)
                or (isinstance(key, float) and math.isfinite(key))
            ):
                key = json.dumps(key)  # the same text json gives a primitive key: 1, true, null
            else:
                key = _safe_repr(key)
        return clean_str(key, 1_000)

    def _other(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return clean_str(str.__str__(value), self.max_chars)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else None
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth)
        if isinstance(value, dt.datetime | dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        if isinstance(value, uuid.UUID | decimal.Decimal | pathlib.PurePath):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return f"<{type(value).__name__}: {len(value)} bytes>"
        if isinstance(value, BaseException):
            return {"type": type(value).__name__, "message": safe_str(value, self.max_chars)}
        if depth >= self.max_depth:
            return f"[max depth {self.max_depth} exceeded: {type(value).__qualname__}]"
        converted = _as_plain(value)
        if converted is not _NOT_CONVERTED:
            return self.convert(converted, depth + 1)
        if isinstance(value, tuple) and hasattr(value, "_asdict"):
            return self._container(value._asdict(), depth)
        if isinstance(value, Mapping | Sequence | set | frozenset):
            return self._container(_ordered(value), depth)
        return _safe_repr(value)


_NOT_CONVERTED = object()


def _as_plain(value: Any) -> Any:
    """Dataclasses, pydantic models and numpy values expose their data through a method."""
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        cls = type(value)
        if callable(getattr(cls, "model_dump", None)):  # pydantic v2
            return value.model_dump(mode="json")
        if callable(getattr(cls, "dict", None)) and hasattr(cls, "__fields__"):  # pydantic v1
            return value.dict()
        if callable(getattr(cls, "tolist", None)):  # numpy arrays and scalars
            return value.tolist()
    except Exception:  # a failing to-dict method falls back to repr
        return _NOT_CONVERTED
    return _NOT_CONVERTED


def _ordered(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:  # mixed types: keep iteration order
            return list(value)
    return value


def to_jsonable(value: Any, *, max_depth: int = 32, max_chars: int = 200_000) -> Any:
    """A JSON-safe copy of ``value``: no NUL, no NaN/Infinity, bounded depth, no cycles."""
    try:
        return _Sanitizer(max_depth, max_chars).convert(value, 0)
    except RecursionError:
        return "[unserializable: too deeply nested]"
    except Exception as exc:  # e.g. a container mutated by another thread mid-copy
        return f"[unserializable: {type(exc).__name__}]"


# Built once: json.dumps() with non-default options constructs a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON. ``value`` must already be sanitized."""
    # Lone surrogates (from bad decoding upstream) are not valid UTF-8: replace them.
    return _ENCODER.encode(value).encode("utf-8", "replace")


def _default(value: Any) -> Any:
    return to_jsonable(value)


_FAST_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
)


def dumps_fast(value: Any, *, max_depth: int, max_chars: int) -> bytes | None:
    """Encode ``value`` with the C encoder when that provably needs no cleaning, else None.

    A full :func:`to_jsonable` walk costs several times the C encoder, and most events
    are plain data. The encoder refuses NaN/Infinity, cycles and odd keys (we fall back);
    unknown objects go through ``to_jsonable`` via ``default``. What it cannot refuse is
    checked on the text: NUL (always escaped as \\u0000), strings over ``max_chars``
    (only possible if the text is longer) and nesting, bounded above by the number of
    opening brackets. Returns None whenever the slow path is needed.
    """
    try:
        text = _FAST_ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError, RuntimeError):
        return None
    if len(text) > max_chars or "\\u0000" in text:
        return None
    if text.count("{") + text.count("[") > max_depth:
        return None
    return text.encode("utf-8", "replace")


def fit_event(event: dict[str, Any], limit: int) -> tuple[bytes, bool]:
    """Serialize ``event``, shrinking its largest payload fields until it fits in ``limit`` bytes.

    Returns the bytes and whether anything was truncated. ``event`` is modified in place.
    Raises ``ValueError`` only when even the identifying fields alone exceed the limit.
    """
    data = dumps(event)
    truncated = False
    for _ in range(2 * len(event) + 2):
        if len(data) <= limit:
            return data, truncated
        sizes = {
            key: len(dumps(item)) for key, item in event.items() if key not in _PROTECTED_FIELDS
        }
        if not sizes or max(sizes.values()) <= len(TRUNCATION_MARKER) + 16:
            break
        key = max(sizes, key=sizes.__getitem__)
        keep = max(sizes[key] - (len(data) - limit) - 256, 0)
        event[key] = _preview(event[key], sizes[key], keep)
        truncated = True
        data = dumps(event)
    if len(data) <= limit:
        return data, truncated
    raise ValueError(f"event identifying fields alone exceed {limit} bytes")


def _preview(value: Any, size: int, keep_bytes: int) -> str:
    """The first ``keep_bytes`` of the value's JSON text plus a marker naming the original size."""
    text = value if isinstance(value, str) else dumps(value).decode("utf-8")
    head = text.encode("utf-8")[:keep_bytes].decode("utf-8", "ignore")
    # JSON escaping can make the head longer than keep_bytes; halve until it fits.
    while head and len(dumps(head)) > keep_bytes:
        head = head[: len(head) // 2]
    return head + TRUNCATION_MARKER.format(n=size)


_second_cache: tuple[int, str] = (-1, "")


def iso_timestamp(epoch_seconds: float) -> str:
    """ISO 8601 UTC with microseconds and a ``Z`` suffix, e.g. ``2026-05-29T08:42:11.123456Z``."""
    global _second_cache
    second = math.floor(epoch_seconds)
    micro = round((epoch_seconds - second) * 1_000_000)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    cached_second, prefix = _second_cache
    if second != cached_second:
        # Events come in bursts within the same second: format the date part once.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
    return f"{prefix}.{micro:06d}Z"
