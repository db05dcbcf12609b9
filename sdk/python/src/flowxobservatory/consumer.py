"""The background consumer: a bounded queue drained by one daemon thread into ``/api/report``.

The calling thread only appends a small dict to a deque (no lock, no serialization, no I/O).
Everything slow — sanitizing, JSON, gzip, HTTP, retries — happens on the consumer thread,
so a slow or dead server can never slow the host app down.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .config import Config
from .context import new_event_id
from .serialize import dumps_fast, fit_event, iso_timestamp, to_jsonable
from .transport import Response, Transport, parse_retry_after, request_headers, urllib_transport

logger = logging.getLogger("flowxobservatory")

_ENVELOPE_HEAD = b'{"events":['
_ENVELOPE_TAIL = b"]}"
_LOG_INTERVAL_S = 60.0
# Errors that mean "the server could not be reached or answered garbage": worth a retry.
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of the consumer's counters (events, not requests, unless named so).

    sent: accepted by the server. rejected: refused by the server (per event in a 207, or
    a whole batch answered 4xx); never retried. failed: never acknowledged — the server was
    unreachable or kept answering 5xx/429 until the retries ran out, or the SDK could not
    encode the event. dropped: not queued because the queue was full (or the SDK was shut
    down). truncated: delivered with fields cut to fit the size cap. retries and batches
    count HTTP requests. pending: events still queued or being sent.
    """

    sent: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0
    truncated: int = 0
    retries: int = 0
    batches: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class _Counters:
    """Mutable counters. Only the consumer thread writes them, except ``dropped`` (locked)."""

    __slots__ = ("batches", "dropped", "failed", "rejected", "retries", "sent", "truncated")

    def __init__(self) -> None:
        self.sent = self.rejected = self.failed = self.dropped = 0
        self.truncated = self.retries = self.batches = 0


class _FlushMarker:
    """Queued by ``flush()``; the consumer sets ``done`` once everything before it is sent."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class LogGate:
    """Let one message per key through every minute, so a dead server does not flood logs."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -_LOG_INTERVAL_S) < _LOG_INTERVAL_S:
            return False
        self._last[key] = now
        return True


def wire_event(raw: Mapping[str, Any], config: Config) -> dict[str, Any]:
    """The wire form of a queued event (not yet sanitized): id, ISO timestamp, app/org ids."""
    event: dict[str, Any] = {"id": new_event_id()}
    event.update(raw)
    timestamp = event.get("timestamp")
    if isinstance(timestamp, float):
        event["timestamp"] = iso_timestamp(timestamp)
    if config.app_id and not event.get("app_id"):
        event["app_id"] = config.app_id
    extra = {
        key: value
        for key, value in (("org_id", config.org_id), ("workspace_id", config.workspace_id))
        if value
    }
    metadata = event.get("metadata")
    if extra and (metadata is None or isinstance(metadata, Mapping)):
        event["metadata"] = {**(metadata or {}), **extra}
    return event


def encode_event(raw: Mapping[str, Any], config: Config) -> tuple[bytes, bool]:
    """JSON bytes the server accepts for one queued event, and whether it was truncated."""
    event = wire_event(raw, config)
    data = dumps_fast(event, max_depth=config.max_depth, max_chars=config.max_string_chars)
    if data is not None and len(data) <= config.max_event_bytes:
        return data, False
    clean = to_jsonable(event, max_depth=config.max_depth, max_chars=config.max_string_chars)
    return fit_event(clean, config.max_event_bytes)


class Consumer:
    """Owns the queue, the sender thread and the counters of one configured client."""

    def __init__(self, config: Config, transport: Transport | None = None) -> None:
        self.config = config
        self._transport = transport or urllib_transport
        self._headers = request_headers(config.api_key)
        self._queue: deque[Any] = deque()
        self._max_size = config.max_queue_size
        self._batch_size = config.batch_size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._counters = _Counters()
        self._log_gate = LogGate()
        self._batch: list[bytes] = []
        self._labels: list[str] = []  # "name run_id" per batched event, to name 207 errors
        self._batch_bytes = 0
        self._in_flight = 0  # events of the batch being sent right now
        self._jitter = random.Random()  # private: a user's random.seed() must not sync clients

    # --- calling thread -------------------------------------------------------------

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event without blocking; drop it (and count) when the queue is full."""
        queue = self._queue
        # len() then append() is not atomic, so the queue may overshoot by a few events
        # under contention; a lock here would cost every caller more than that is worth.
        if len(queue) >= self._max_size or self._stop.is_set():
            self._count_dropped(full=not self._stop.is_set())
            return
        queue.append(event)
        if self._thread is None:
            self._start()
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def _count_dropped(self, full: bool) -> None:
        with self._drop_lock:
            self._counters.dropped += 1
            first = self._counters.dropped == 1
        if first:
            reason = f"the queue is full ({self._max_size})" if full else "the SDK was shut down"
            logger.warning("Observatory is dropping events: %s", reason)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name="flowxobservatory-consumer", daemon=True
            )
            self._thread = thread
            try:
                thread.start()
            except RuntimeError:
                # Interpreter shutdown (Python >= 3.12 refuses new threads): flush() then
                # drains on the calling thread instead.
                logger.debug("could not start the Observatory consumer thread", exc_info=True)

    def flush(self, timeout: float) -> bool:
        """Block until everything queued so far is sent (or given up); False on timeout."""
        if not self._queue and self._thread is None:
            return True
        marker = _FlushMarker()
        self._queue.append(marker)
        if self._thread is None:
            self._start()
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._wake.set()
        else:
            self._drain_safely()
        return marker.done.wait(timeout)

    def shutdown(self, timeout: float) -> bool:
        """Flush within ``timeout`` then stop the thread. Never waits longer than ``timeout``."""
        flushed = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        if not flushed:
            left = self.stats.pending
            logger.warning(
                "Observatory shutdown: gave up after %.1fs with %d event(s) unsent", timeout, left
            )
        return flushed

    def take_pending(self) -> list[dict[str, Any]]:
        """Stop this consumer and hand over its queued events (used when reconfiguring)."""
        self._stop.set()
        self._wake.set()
        pending: list[dict[str, Any]] = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                return pending
            if isinstance(item, _FlushMarker):
                item.done.set()
            else:
                pending.append(item)

    @property
    def stats(self) -> Stats:
        c = self._counters
        pending = sum(1 for item in list(self._queue) if not isinstance(item, _FlushMarker))
        return Stats(
            sent=c.sent,
            rejected=c.rejected,
            failed=c.failed,
            dropped=c.dropped,
            truncated=c.truncated,
            retries=c.retries,
            batches=c.batches,
            pending=pending + len(self._batch) + self._in_flight,
        )

    # --- consumer thread ------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.flush_interval)
            self._wake.clear()
            self._drain_safely()

    def _drain_safely(self) -> None:
        try:
            self._drain()
        except Exception:
            # A bug in the SDK must not kill the thread: count what was in hand and go on.
            logger.exception("Observatory consumer failed; %d event(s) lost", len(self._batch))
            self._counters.failed += len(self._batch)
            self._batch, self._labels, self._batch_bytes = [], [], 0

    def _drain(self) -> None:
        budget = self.config.max_batch_bytes - len(_ENVELOPE_HEAD) - len(_ENVELOPE_TAIL)
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                self._send_batch()
                item.done.set()
                continue
            data = self._encode(item)
            if data is None:
                continue
            if self._batch and self._batch_bytes + len(data) + 1 > budget:
                self._send_batch()
            self._batch.append(data)
            self._labels.append(f"{item.get('name')} (run {item.get('run_id')})")
            self._batch_bytes += len(data) + 1
            if len(self._batch) >= self._batch_size:
                self._send_batch()
        self._send_batch()

    def _encode(self, raw: dict[str, Any]) -> bytes | None:
        try:
            data, truncated = encode_event(raw, self.config)
        except Exception:
            logger.exception("Observatory could not encode event %r", raw.get("name"))
            self._counters.failed += 1
            return None
        if truncated:
            self._counters.truncated += 1
        return data

    def _send_batch(self) -> None:
        if not self._batch:
            return
        items, labels = self._batch, self._labels
        self._batch, self._labels, self._batch_bytes = [], [], 0
        self._in_flight = len(items)
        try:
            body = gzip.compress(
                _ENVELOPE_HEAD + b",".join(items) + _ENVELOPE_TAIL, self.config.gzip_level
            )
            self._deliver(body, labels)
        except Exception:
            logger.exception("Observatory delivery failed; %d event(s) lost", len(items))
            self._counters.failed += len(items)
        finally:
            self._in_flight = 0

    def _deliver(self, body: bytes, labels: list[str]) -> None:
        """Send one batch; retry 429/503/5xx/network errors a bounded number of times.

        Retries resend the very same bytes, event ids included, so the server de-duplicates
        a batch that did arrive but whose answer was lost.
        """
        count = len(labels)
        last_error = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self._counters.retries += 1
            try:
                response = self._transport(
                    self.config.report_url, body, self._headers, self.config.timeout
                )
            except _NETWORK_ERRORS as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                delay = self._backoff(attempt)
            else:
                self._counters.batches += 1
                retry_in = self._handle_response(response, labels, attempt)
                if retry_in is None:
                    return
                delay = retry_in
                last_error = f"HTTP {response.status}"
            if attempt == self.config.max_retries or self._stop.wait(delay):
                break  # out of attempts, or shutting down: do not hold the exiting app
        self._counters.failed += count
        if self._log_gate.allow("failed"):
            logger.warning(
                "Observatory: dropped %d event(s) after %d attempt(s): %s",
                count,
                attempt + 1,
                last_error,
            )

    def _handle_response(self, response: Response, labels: list[str], attempt: int) -> float | None:
        """None when the batch is settled (sent or refused); else seconds before a retry."""
        status, count = response.status, len(labels)
        if 200 <= status < 300:
            self._record_accepted(response, labels)
            return None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                return min(retry_after, self.config.max_retry_after)
            return self._backoff(attempt)
        if status >= 500:
            return self._backoff(attempt)
        # 4xx (and unexpected 1xx/3xx): the same body would be refused again.
        self._counters.rejected += count
        if self._log_gate.allow(f"status-{status}"):
            logger.warning(
                "Observatory refused a batch of %d event(s): HTTP %d %s",
                count,
                status,
                _excerpt(response.body),
            )
        return None

    def _record_accepted(self, response: Response, labels: list[str]) -> None:
        count = len(labels)
        payload = _json_object(response.body)
        errors: list[Any] = payload["errors"] if isinstance(payload.get("errors"), list) else []
        rejected = payload.get("rejected")
        rejected = rejected if isinstance(rejected, int) else len(errors)
        accepted = payload.get("accepted")
        self._counters.sent += accepted if isinstance(accepted, int) else count - rejected
        self._counters.rejected += rejected
        for error in errors:
            # Once each: a 207 is never retried, so these lines are not repeated.
            logger.warning("Observatory rejected an event: %s", _describe(error, labels))

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": never zero, never in lock-step with other clients.
        ceiling = min(self.config.backoff_max, self.config.backoff_base * (1 << attempt))
        return ceiling / 2 + self._jitter.uniform(0, ceiling / 2)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _describe(error: Any, labels: list[str]) -> str:
    """``tool_end (run 9239…) at index 3: input: nesting too deep``."""
    if not isinstance(error, dict):
        return str(error)
    index = error.get("index")
    label = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else "event"
    return f"{label} at index {index}: {error.get('error')}"


def _excerpt(body: bytes, limit: int = 300) -> str:
    return body[:limit].decode("utf-8", "replace")
