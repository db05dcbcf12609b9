"""The current run, carried in a ContextVar so asyncio tasks and copied contexts nest correctly.

Plain ``threading.Thread`` targets start with an empty context (Python semantics): run them
through ``contextvars.copy_context().run`` to keep the parent run.
"""

from __future__ import annotations

import contextvars
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

_EMPTY: Mapping[str, Any] = {}


class RunFrame:
    """One entry of the run stack: the run id plus the metadata its descendants inherit.

    ``metadata`` is shared by every event of the run and, when nothing changes, by the
    runs below it; it is never mutated after creation, so sharing is safe and cheap.
    """

    __slots__ = ("metadata", "run_id")

    def __init__(self, run_id: str | None, metadata: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.metadata = metadata


_current: contextvars.ContextVar[RunFrame | None] = contextvars.ContextVar(
    "flowxobservatory_run", default=None
)


def current_frame() -> RunFrame | None:
    return _current.get()


def current_run_id() -> str | None:
    """The id of the innermost decorated run (or ``llm_call`` block), or None outside any."""
    frame = _current.get()
    return None if frame is None else frame.run_id


# A private generator, seeded from os.urandom: a user's random.seed() cannot make ids repeat,
# and it is re-seeded in fork() children (below) so parent and child never share a sequence.
# os.urandom itself is not used per call: it releases the GIL, and re-acquiring it while
# the consumer thread is busy can stall the calling thread for a whole switch interval.
_random = random.Random()
_getrandbits = _random.getrandbits


def new_run_id() -> str:
    """A random version-4 UUID string (RFC 4122 layout; 122 random bits)."""
    h = f"{_getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_event_id() -> str:
    """A random version-4 UUID as 32 hex digits (the event id used for de-duplication)."""
    h = f"{_getrandbits(128):032x}"
    return f"{h[:12]}4{h[13:16]}{_VARIANT[h[16]]}{h[17:]}"


# Maps any hex digit to one with the RFC 4122 variant bits (10xx): 8, 9, a or b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _reseed_after_fork() -> None:
    _random.seed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)


def merge_tags(inherited: Sequence[str] | None, own: Sequence[str]) -> list[str]:
    if not inherited:
        return list(own)
    return list(inherited) + [tag for tag in own if tag not in inherited]


def child_metadata(base: Mapping[str, Any], own: Mapping[str, Any]) -> Mapping[str, Any]:
    """Metadata of a new run: the parent's (agent, user, tags) overlaid with the decorator's."""
    if not own:
        return base
    merged = {**base, **own}
    own_tags = own.get("tags")
    if own_tags and base.get("tags"):
        merged["tags"] = merge_tags(base["tags"], own_tags)
    return merged


@contextmanager
def identify(user_id: str, user_props: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Attribute the runs started inside the block to ``user_id`` (unless a decorator sets one).

    Useful in web apps, where the user is only known per request::

        with identify(request.user.id, {"plan": "pro"}):
            answer(question)
    """
    parent = _current.get()
    own: dict[str, Any] = {"user_id": user_id}
    if user_props is not None:
        own["user_props"] = dict(user_props)
    base = _EMPTY if parent is None else parent.metadata
    # Same run id as the enclosing run: identify() changes attribution, not nesting.
    frame = RunFrame(None if parent is None else parent.run_id, {**base, **own})
    token = _current.set(frame)
    try:
        yield
    finally:
        _current.reset(token)


def push(frame: RunFrame) -> contextvars.Token[RunFrame | None]:
    return _current.set(frame)


def pop(token: contextvars.Token[RunFrame | None]) -> None:
    _current.reset(token)
