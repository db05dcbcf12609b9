"""The process-wide client: configuration, the consumer, the exit hook and fork safety."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from .config import Config, build_config, tracing_from_env
from .consumer import Consumer, Stats
from .transport import Transport

logger = logging.getLogger("flowxobservatory")


class Client:
    """One configuration plus the consumer that delivers its events."""

    def __init__(self, config: Config, transport: Transport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._use(Consumer(config, transport))

    def _use(self, consumer: Consumer) -> None:
        self._consumer = consumer
        # emit() is on every decorated call: bind the consumer's put directly (one call
        # level less). It queues one raw event, never blocks, never raises on a full queue.
        self.emit: Callable[[dict[str, Any]], None] = consumer.put

    @property
    def stats(self) -> Stats:
        """Counters of sent / rejected / failed / dropped events; see :class:`Stats`."""
        return self._consumer.stats

    def flush(self, timeout: float = 5.0) -> bool:
        return self._consumer.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        bound = self.config.shutdown_timeout if timeout is None else timeout
        return self._consumer.shutdown(bound)

    def _reset_after_fork(self) -> None:
        # The parent's queue, locks and thread are meaningless in the child: start over,
        # so the parent's pending events are sent once (by the parent), not twice.
        self._use(Consumer(self.config, self._transport))


class _Runtime:
    """Module state read on every decorated call: keep it to plain attribute lookups."""

    __slots__ = ("client", "enabled", "exiting", "lock", "overrides", "transport")

    def __init__(self) -> None:
        self.enabled: bool = tracing_from_env()
        self.client: Client | None = None
        self.exiting = False
        self.lock = threading.Lock()
        # Explicit configure() arguments, reused when the client is re-created lazily
        # after shutdown(), so a later event does not silently fall back to env defaults.
        self.overrides: dict[str, Any] = {}
        self.transport: Transport | None = None


RUNTIME = _Runtime()


def configure(
    api_url: str | None = None,
    api_key: str | None = None,
    app_id: str | None = None,
    tracing: bool | None = None,
    *,
    transport: Transport | None = None,
    **options: Any,
) -> Client:
    """Configure the SDK. Explicit arguments beat the environment, which beats the defaults.

    ``options`` are :class:`~flowxobservatory.config.Config` fields (``flush_interval``,
    ``max_queue_size``, ``timeout``, ``max_retries`` ...); unknown names raise TypeError.
    Events queued before this call are handed over to the new configuration.
    """
    overrides: dict[str, Any] = {
        "api_url": api_url,
        "api_key": api_key,
        "app_id": app_id,
        "tracing": tracing,
        **options,
    }
    config = build_config(overrides)
    client = Client(config, transport)
    with RUNTIME.lock:
        previous = RUNTIME.client
        RUNTIME.client = client
        RUNTIME.enabled = config.tracing
        RUNTIME.overrides = {key: value for key, value in overrides.items() if value is not None}
        RUNTIME.transport = transport
    if previous is not None:
        for event in previous._consumer.take_pending():
            client.emit(event)
    _warn_if_no_key(config)
    return client


def get_client() -> Client:
    """The current client, created from the environment on first use."""
    client = RUNTIME.client
    if client is not None:
        return client
    with RUNTIME.lock:
        if RUNTIME.client is None:
            config = build_config(RUNTIME.overrides)
            RUNTIME.client = Client(config, RUNTIME.transport)
            _warn_if_no_key(config)
        return RUNTIME.client


def active_client() -> Client | None:
    """The client decorators should report to, or None (exiting, or a bad environment)."""
    client = RUNTIME.client
    if client is not None:
        return client
    if RUNTIME.exiting:
        return None  # never start a consumer thread while the interpreter shuts down
    try:
        return get_client()
    except (TypeError, ValueError):
        # A bad FLOWX_OBSERVATORY_* value must not break the host app: report it, stop tracing.
        logger.exception("Observatory configuration is invalid; tracing disabled")
        RUNTIME.enabled = False
        return None


def flush(timeout: float = 5.0) -> bool:
    """Block until queued events are delivered or given up; False if ``timeout`` passed first."""
    client = RUNTIME.client
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush (bounded by ``timeout``, default ``shutdown_timeout``) and stop the consumer.

    A later event starts a fresh consumer with the same configuration.
    """
    with RUNTIME.lock:
        client, RUNTIME.client = RUNTIME.client, None
    return True if client is None else client.shutdown(timeout)


def _warn_if_no_key(config: Config) -> None:
    if config.tracing and not config.api_key:
        logger.warning(
            "Observatory has no API key (set FLOWX_OBSERVATORY_API_KEY or configure(api_key=...)); "
            "the server will refuse the events"
        )


def _at_exit() -> None:
    RUNTIME.exiting = True
    client = RUNTIME.client
    if client is not None:
        client.shutdown()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork time; in the child it would stay held.
    RUNTIME.lock = threading.Lock()
    client = RUNTIME.client
    if client is not None:
        client._reset_after_fork()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
