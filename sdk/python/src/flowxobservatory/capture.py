"""What a run records: bound arguments, error details, generator items."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any

from .serialize import clean_str, safe_str

Binder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_RECEIVER_NAMES = ("self", "cls")


def make_binder(fn: Callable[..., Any]) -> Binder:
    """A function mapping ``(args, kwargs)`` to ``{parameter: value}`` for ``fn``.

    The signature is inspected once here; ``inspect.Signature.bind`` per call costs several
    microseconds, this costs a few hundred nanoseconds. Unpassed parameters with defaults
    are included (after the passed ones). A leading ``self``/``cls`` is left out. The
    binder never raises: a call with wrong arguments is reported by ``fn`` itself.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        return _bind_unknown
    first = params[0] if params else None
    skip = 1 if first and first.kind in _POSITIONAL and first.name in _RECEIVER_NAMES else 0
    receiver = params[0].name if skip else None
    params = params[skip:]
    positional = tuple(p.name for p in params if p.kind in _POSITIONAL)
    named = frozenset(p.name for p in params if p.kind is not p.VAR_POSITIONAL)
    var_args = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
    var_kwargs = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
    defaults = tuple((p.name, p.default) for p in params if p.default is not p.empty)
    count = len(positional)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if skip:
            args = args[1:]
        bound = dict(zip(positional, args, strict=False))
        if var_args is not None and len(args) > count:
            bound[var_args] = args[count:]
        if kwargs:
            _bind_keywords(bound, kwargs, named, var_kwargs, receiver)
        for name, default in defaults:
            if name not in bound:
                bound[name] = default
        return bound

    return bind


def _bind_keywords(
    bound: dict[str, Any],
    kwargs: dict[str, Any],
    named: frozenset[str],
    var_kwargs: str | None,
    receiver: str | None,
) -> None:
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == receiver:
            continue
        if key in named or var_kwargs is None:
            bound[key] = value
        else:
            extra[key] = value
    if extra:
        bound[var_kwargs] = extra  # type: ignore[index]  # extra is only filled when set


def _bind_unknown(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def error_payload(exc: BaseException, max_stack_chars: int) -> dict[str, str]:
    """``{type, message, stack}`` for an end event. Formatted now: frames die with the call."""
    try:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # a broken __str__ inside the chain: keep what we can
        stack = "<traceback unavailable>"
    if len(stack) > max_stack_chars:
        # The innermost frames (the end of the text) say where it broke: keep those.
        stack = "…[stack truncated]\n" + stack[-max_stack_chars:]
    return {
        "type": type(exc).__name__,
        "message": safe_str(exc),
        "stack": clean_str(stack, max_stack_chars + 32),
    }


class ItemCollector:
    """The items a generator yielded, capped; the output of a traced generator."""

    __slots__ = ("extra", "items", "limit")

    def __init__(self, limit: int) -> None:
        self.items: list[Any] = []
        self.limit = limit
        self.extra = 0

    def add(self, item: Any) -> None:
        if len(self.items) < self.limit:
            self.items.append(item)
        else:
            self.extra += 1

    def value(self) -> list[Any]:
        if not self.extra:
            return self.items
        return [*self.items, f"…[{self.extra} more item(s) not captured]"]
