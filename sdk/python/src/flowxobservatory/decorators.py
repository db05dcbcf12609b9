"""``@agent``, ``@chain`` and ``@tool``: trace a function as a run nested under the current one.

Every wrapper checks one flag first; with tracing off it calls straight through. With
tracing on it emits ``<kind>_start``, runs the function with its frame as the current
run, and emits ``<kind>_end`` (status ``success`` or ``error``). Exceptions are re-raised
unchanged (same object) with a bare ``raise``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import Any, TypeVar

from .capture import ItemCollector, make_binder
from .client import RUNTIME
from .context import pop, push
from .events import RunSpec, end_run, start_run

F = TypeVar("F", bound=Callable[..., Any])


def _own_metadata(
    kind: str,
    name: str,
    user_id: str | None,
    user_props: dict[str, Any] | None,
    tags: Sequence[str] | None,
) -> dict[str, Any]:
    """The metadata this decorator adds on top of what its run inherits."""
    own: dict[str, Any] = {}
    if kind == "agent":
        own["agent"] = name  # every run below inherits it: "the nearest enclosing agent"
    if user_id is not None:
        own["user_id"] = user_id
    if user_props is not None:
        own["user_props"] = dict(user_props)
    if tags:
        if isinstance(tags, str):
            raise TypeError("tags must be a list of strings, not a string")
        own["tags"] = [str(tag) for tag in tags]
    return own


def _decorate(
    kind: str,
    fn: Any,
    name: str | None,
    user_id: str | None,
    user_props: dict[str, Any] | None,
    tags: Sequence[str] | None,
) -> Any:
    if isinstance(fn, classmethod | staticmethod):
        # @agent above @classmethod: wrap the function inside and re-wrap.
        return type(fn)(_decorate(kind, fn.__func__, name, user_id, user_props, tags))
    if not callable(fn):
        raise TypeError(f"@{kind} can only decorate a callable, got {type(fn).__name__}")
    run_name = name or getattr(fn, "__qualname__", None) or repr(fn)
    spec = RunSpec(
        kind, run_name, _own_metadata(kind, run_name, user_id, user_props, tags), make_binder(fn)
    )
    if inspect.isasyncgenfunction(fn):
        wrapper = _wrap_async_generator(fn, spec)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _wrap_coroutine(fn, spec)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _wrap_generator(fn, spec)
    else:
        wrapper = _wrap_function(fn, spec)
    return functools.update_wrapper(wrapper, fn)


def _wrap_function(fn: Callable[..., Any], spec: RunSpec) -> Callable[..., Any]:
    runtime = RUNTIME

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not runtime.enabled:
            return fn(*args, **kwargs)
        run = start_run(spec, args, kwargs)
        if run is None:
            return fn(*args, **kwargs)
        token = push(run.frame)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            pop(token)
            end_run(spec, run, exc=exc)
            raise
        pop(token)
        end_run(spec, run, result)
        return result

    return wrapper


def _wrap_coroutine(fn: Callable[..., Any], spec: RunSpec) -> Callable[..., Any]:
    runtime = RUNTIME

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not runtime.enabled:
            return await fn(*args, **kwargs)
        run = start_run(spec, args, kwargs)
        if run is None:
            return await fn(*args, **kwargs)
        # The coroutine runs in this task's context, so the frame is visible to it and
        # to any task it creates (tasks copy the context when they are created).
        token = push(run.frame)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:  # includes CancelledError: the run did not finish
            pop(token)
            end_run(spec, run, exc=exc)
            raise
        pop(token)
        end_run(spec, run, result)
        return result

    return wrapper


def _wrap_generator(fn: Callable[..., Any], spec: RunSpec) -> Callable[..., Any]:
    """Trace a generator from its first ``next()`` to exhaustion, ``close()`` or an error.

    The frame is made current only while the generator's own code runs (around each
    ``send``/``throw``), never while the consumer of the items runs: the loop body of
    ``for x in gen()`` is not part of the generator's run.
    """
    runtime = RUNTIME

    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if not runtime.enabled:
            return (yield from fn(*args, **kwargs))
        run = start_run(spec, args, kwargs)
        if run is None:
            return (yield from fn(*args, **kwargs))
        collector = ItemCollector(run.client.config.max_generator_items)
        inner = fn(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = push(run.frame)
            try:
                item = inner.send(to_send) if to_throw is None else inner.throw(to_throw)
            except StopIteration as stop:
                end_run(spec, run, collector.value())
                return stop.value
            except BaseException as exc:
                end_run(spec, run, collector.value(), exc)
                raise
            finally:
                pop(token)
            collector.add(item)
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit:
                _close_inner(inner.close, spec, run, collector)
                raise
            except BaseException as exc:
                to_throw = exc

    return wrapper


def _close_inner(
    close: Callable[[], Any], spec: RunSpec, run: Any, collector: ItemCollector
) -> None:
    """The consumer stopped early (break, close(), garbage collection): close the inner
    generator so its ``finally`` blocks run, and end the run with the items seen so far."""
    token = push(run.frame)
    try:
        close()
    except BaseException as exc:
        end_run(spec, run, collector.value(), exc)
        raise
    finally:
        pop(token)
    end_run(spec, run, collector.value())


def _wrap_async_generator(fn: Callable[..., Any], spec: RunSpec) -> Callable[..., Any]:
    """Like :func:`_wrap_generator`, for ``async def`` functions that ``yield``."""
    runtime = RUNTIME

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        run = start_run(spec, args, kwargs) if runtime.enabled else None
        collector = ItemCollector(run.client.config.max_generator_items if run else 0)
        inner = fn(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = push(run.frame) if run else None
            try:
                if to_throw is None:
                    item = await inner.asend(to_send)
                else:
                    item = await inner.athrow(to_throw)
            except StopAsyncIteration:
                if run:
                    end_run(spec, run, collector.value())
                return
            except BaseException as exc:
                if run:
                    end_run(spec, run, collector.value(), exc)
                raise
            finally:
                if token is not None:
                    pop(token)
            if run:
                collector.add(item)
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit:
                await _aclose_inner(inner, spec, run, collector)
                raise
            except BaseException as exc:
                to_throw = exc

    return wrapper


async def _aclose_inner(inner: Any, spec: RunSpec, run: Any, collector: ItemCollector) -> None:
    token = push(run.frame) if run else None
    try:
        await inner.aclose()
    except BaseException as exc:
        if run:
            end_run(spec, run, collector.value(), exc)
        raise
    finally:
        if token is not None:
            pop(token)
    if run:
        end_run(spec, run, collector.value())


def _decorator(
    kind: str,
    name: str | Callable[..., Any] | None,
    user_id: str | None,
    user_props: dict[str, Any] | None,
    tags: Sequence[str] | None,
) -> Any:
    if name is not None and not isinstance(name, str):
        # Bare form: @agent without parentheses hands us the function itself.
        return _decorate(kind, name, None, user_id, user_props, tags)

    def apply(fn: F) -> F:
        return _decorate(kind, fn, name, user_id, user_props, tags)  # type: ignore[no-any-return]

    return apply


def agent(
    name: str | Callable[..., Any] | None = None,
    *,
    user_id: str | None = None,
    user_props: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
) -> Any:
    """Trace the function as an ``agent`` run; every run below it reports ``metadata.agent``.

    Usable bare (``@agent``) or with arguments (``@agent("support-bot", user_id="u1",
    user_props={"plan": "pro"}, tags=["beta"])``); the name defaults to the function's
    ``__qualname__``. Works on plain and ``async def`` functions, generators and async
    generators, methods (``self``/``cls`` left out of the input), class/static methods.
    Runs below inherit ``user_id``, ``user_props`` and ``tags``.
    """
    return _decorator("agent", name, user_id, user_props, tags)


def chain(
    name: str | Callable[..., Any] | None = None,
    *,
    user_id: str | None = None,
    user_props: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
) -> Any:
    """Trace the function as a ``chain`` run (a step of an agent). Same forms as :func:`agent`."""
    return _decorator("chain", name, user_id, user_props, tags)


def tool(
    name: str | Callable[..., Any] | None = None,
    *,
    user_id: str | None = None,
    user_props: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
) -> Any:
    """Trace the function as a ``tool`` run. Same forms as :func:`agent`."""
    return _decorator("tool", name, user_id, user_props, tags)
