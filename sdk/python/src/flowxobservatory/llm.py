"""Recording LLM calls: one ``llm_call`` event per call, carrying start and end at once.

The event's ``timestamp`` is the END of the call and ``latency_s`` its duration; the
server derives the start as ``timestamp - latency_s``.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from .capture import error_payload
from .client import RUNTIME, Client, active_client
from .context import RunFrame, pop, push
from .events import capture, log_internal_error, new_frame

_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_prompt_tokens")
# Usage attribute names across providers -> our field names.
_USAGE_ALIASES = {
    "prompt_tokens": ("prompt_tokens", "input_tokens"),
    "completion_tokens": ("completion_tokens", "output_tokens"),
    "total_tokens": ("total_tokens",),
    "cached_prompt_tokens": ("cached_prompt_tokens", "cache_read_input_tokens"),
}


_MAX_TOKENS = 2**53 - 1  # the server refuses larger counts (they would overflow its sums)


def _token_count(value: Any) -> int | None:
    """A count the server accepts (an int in 0..2^53-1), or None: then the field is left out."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        count = int(value) if value.is_integer() else -1
    elif isinstance(value, str):
        count = int(value) if value.strip().isdigit() else -1
    else:
        try:
            count = operator.index(value)  # int, numpy integers
        except TypeError:
            return None
    return count if 0 <= count <= _MAX_TOKENS else None


def _read(source: Any, key: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def usage_from(usage: Any) -> dict[str, int]:
    """Token counts from an OpenAI/Anthropic-style ``usage`` object or dict."""
    counts: dict[str, int] = {}
    for field, aliases in _USAGE_ALIASES.items():
        for alias in aliases:
            count = _token_count(_read(usage, alias))
            if count is not None:
                counts[field] = count
                break
    # Anthropic's input_tokens leave out the prompt tokens read from (or written to) its
    # cache; the server counts cached tokens as part of prompt_tokens (OpenAI's convention).
    if _token_count(_read(usage, "prompt_tokens")) is None and "prompt_tokens" in counts:
        for extra in ("cache_read_input_tokens", "cache_creation_input_tokens"):
            counts["prompt_tokens"] += _token_count(_read(usage, extra)) or 0
    # OpenAI reports cached prompt tokens as usage.prompt_tokens_details.cached_tokens.
    details = _read(usage, "prompt_tokens_details")
    if "cached_prompt_tokens" not in counts and details is not None:
        cached = _token_count(_read(details, "cached_tokens"))
        if cached is not None:
            counts["cached_prompt_tokens"] = cached
    return counts


def _own(tags: Sequence[str] | None) -> dict[str, Any]:
    return {"tags": [str(tag) for tag in tags]} if tags else {}


def _extra_metadata(
    params: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Metadata of this call only (not inherited by runs nested in an llm_call block)."""
    extra: dict[str, Any] = {"params": dict(params)} if params else {}
    if metadata:
        extra.update(metadata)
    return extra or None


def _token_fields(tokens: Mapping[str, Any]) -> dict[str, int]:
    """The valid token counts; ``total_tokens`` defaults to prompt + completion."""
    counts = {key: _token_count(tokens.get(key)) for key in _TOKEN_FIELDS}
    valid = {key: count for key, count in counts.items() if count is not None}
    if "total_tokens" not in valid and "prompt_tokens" in valid and "completion_tokens" in valid:
        valid["total_tokens"] = valid["prompt_tokens"] + valid["completion_tokens"]
    return valid


def _llm_event(
    client: Client,
    frame: RunFrame,
    parent_run_id: str | None,
    *,
    model: str,
    name: str | None,
    input: Any,
    output: Any,
    tokens: Mapping[str, int | None],
    latency_s: float,
    end: float,
    exc: BaseException | Mapping[str, Any] | str | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    config = client.config
    event: dict[str, Any] = {
        "name": "llm_call",
        "type": "llm",
        "run_id": frame.run_id,
        "parent_run_id": parent_run_id,
        "timestamp": end,
        "run_name": name or model,
        "metadata": {**frame.metadata, **metadata} if metadata else frame.metadata,
        "model": model,
        "latency_s": max(float(latency_s), 0.0),
        "status": "success" if exc is None else "error",
    }
    if config.capture_input and input is not None:
        event["input"] = capture(input, config)
    if config.capture_output and output is not None:
        event["output"] = capture(output, config)
    event.update(_token_fields(tokens))
    if isinstance(exc, BaseException):
        event["error"] = error_payload(exc, config.max_stack_chars)
    elif exc is not None:
        event["error"] = exc
    return event


class LLMCall:
    """Context manager (sync or async) recording one LLM call as an ``llm_call`` event.

    ::

        with llm_call("gpt-4o", input=messages) as call:
            response = client.chat.completions.create(model="gpt-4o", messages=messages)
            call.set_output(response.choices[0].message.content)
            call.set_usage(response.usage)

    The block is the current run while it runs (``current_run_id()`` is the call's id).
    An exception inside the block is recorded (status ``error``) and propagates unchanged.
    """

    def __init__(
        self,
        model: str,
        input: Any = None,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.input = input
        self.name = name
        self.output: Any = None
        self.tokens: dict[str, int | None] = {}
        self.run_id: str | None = None
        self._own = _own(tags)
        self._metadata = _extra_metadata(params, metadata)
        self._client: Client | None = None
        self._frame: RunFrame | None = None
        self._parent_run_id: str | None = None
        self._token: Any = None
        self._started = 0.0

    def set_output(self, output: Any) -> None:
        self.output = output

    def set_usage(
        self,
        usage: Any = None,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        total_tokens: int | None = None,
        cached_prompt_tokens: int | None = None,
    ) -> None:
        """Token counts, from a provider ``usage`` object/dict and/or explicit numbers."""
        if usage is not None:
            self.tokens.update(usage_from(usage))
        explicit = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "cached_prompt_tokens": cached_prompt_tokens,
        }
        self.tokens.update({key: value for key, value in explicit.items() if value is not None})

    def __enter__(self) -> LLMCall:
        if self._frame is not None:
            raise RuntimeError("an llm_call block cannot be entered twice")
        if not RUNTIME.enabled:
            return self
        try:
            self._client = active_client()
            if self._client is not None:
                self._frame, self._parent_run_id = new_frame(self._own)
                self.run_id = self._frame.run_id
                self._token = push(self._frame)
        except Exception:
            log_internal_error("llm_call")
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._frame is None or self._client is None:
            return
        latency = time.perf_counter() - self._started
        try:
            if self._token is not None:
                pop(self._token)
            self._client.emit(
                _llm_event(
                    self._client,
                    self._frame,
                    self._parent_run_id,
                    model=self.model,
                    name=self.name,
                    input=self.input,
                    output=self.output,
                    tokens=self.tokens,
                    latency_s=latency,
                    end=time.time(),
                    exc=exc,
                    metadata=self._metadata,
                )
            )
        except Exception:
            log_internal_error("llm_call")

    async def __aenter__(self) -> LLMCall:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


# `with llm_call("gpt-4o", input=...) as call:` records an LLM call around a block. The
# class itself, under the name the README uses: one signature, nothing to keep in step.
llm_call = LLMCall


def record_llm_call(
    model: str,
    *,
    input: Any = None,
    output: Any = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    total_tokens: int | None = None,
    cached_prompt_tokens: int | None = None,
    usage: Any = None,
    latency_s: float = 0.0,
    end_time: float | None = None,
    error: BaseException | Mapping[str, Any] | str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str | None:
    """Record an LLM call that already happened, nested under the current run.

    ``end_time`` is epoch seconds (default: now). Returns the new run id (None when
    tracing is off).
    """
    if not RUNTIME.enabled:
        return None
    try:
        client = active_client()
        if client is None:
            return None
        frame, parent_run_id = new_frame(_own(tags))
        tokens: dict[str, int | None] = dict(usage_from(usage)) if usage is not None else {}
        explicit = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "cached_prompt_tokens": cached_prompt_tokens,
        }
        tokens.update({key: value for key, value in explicit.items() if value is not None})
        client.emit(
            _llm_event(
                client,
                frame,
                parent_run_id,
                model=model,
                name=name,
                input=input,
                output=output,
                tokens=tokens,
                latency_s=latency_s,
                end=time.time() if end_time is None else end_time,
                exc=error,
                metadata=_extra_metadata(params, metadata),
            )
        )
        return frame.run_id
    except Exception:
        log_internal_error("record_llm_call")
        return None
