"""SDK configuration: explicit ``configure()`` arguments, then the environment, then defaults."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("flowxobservatory")

DEFAULT_API_URL = "http://127.0.0.1:8000"

ENV_API_KEY = "FLOWX_OBSERVATORY_API_KEY"
ENV_API_URL = "FLOWX_OBSERVATORY_API_URL"
ENV_APP_ID = "FLOWX_OBSERVATORY_APP_ID"
ENV_ORG_ID = "FLOWX_OBSERVATORY_ORG_ID"
ENV_WORKSPACE_ID = "FLOWX_OBSERVATORY_WORKSPACE_ID"
ENV_TRACING = "OBSERVATORY_TRACING"

_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_TRUE_WORDS = frozenset({"true", "1", "yes", "on", ""})


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything the SDK needs; immutable so the consumer thread can read it without locks."""

    api_url: str = DEFAULT_API_URL
    api_key: str | None = None
    app_id: str | None = None
    org_id: str | None = None
    workspace_id: str | None = None
    tracing: bool = True

    # Queue and batching.
    max_queue_size: int = 10_000
    flush_interval: float = 0.5
    batch_size: int = 100
    # Serialized (uncompressed) bytes per request; well below the server's 5 MiB limit.
    max_batch_bytes: int = 1024 * 1024
    # The server rejects events over 1 MiB; bigger events get their largest fields truncated.
    max_event_bytes: int = 960 * 1024
    gzip_level: int = 6

    # HTTP and retries (all on the background thread).
    timeout: float = 5.0
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    # The server's rate limit answers 429 with the seconds to its next one-minute window.
    max_retry_after: float = 60.0
    shutdown_timeout: float = 2.0

    # Capture.
    capture_input: bool = True
    capture_output: bool = True
    # True: sanitize input/output on the calling thread (a snapshot, immune to later
    # mutation, but slower). False: keep references, sanitize on the consumer thread.
    snapshot: bool = False
    max_depth: int = 32
    max_string_chars: int = 200_000
    max_stack_chars: int = 16_000
    max_generator_items: int = 1_000

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("http://", "https://")):
            raise ValueError(f"api_url must start with http:// or https://, got {self.api_url!r}")
        for name in ("max_queue_size", "batch_size", "max_batch_bytes", "max_event_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in (
            "flush_interval",
            "timeout",
            "backoff_base",
            "backoff_max",
            "max_retry_after",
            "shutdown_timeout",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.max_event_bytes > self.max_batch_bytes:
            raise ValueError("max_event_bytes must not exceed max_batch_bytes")

    @property
    def report_url(self) -> str:
        return self.api_url.rstrip("/") + "/api/report"


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(Config))


def parse_tracing(value: str | None) -> bool:
    """``OBSERVATORY_TRACING``: false/0/no/off disable; anything unrecognised keeps tracing on.

    Never raises: a typo in an environment variable must not crash the host app at import.
    """
    if value is None:
        return True
    word = value.strip().lower()
    if word in _FALSE_WORDS:
        return False
    if word not in _TRUE_WORDS:
        logger.warning("Ignoring unrecognised %s=%r; tracing stays on", ENV_TRACING, value)
    return True


def tracing_from_env(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return parse_tracing(environ.get(ENV_TRACING))


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment provides (only those that are set and non-empty)."""
    environ = os.environ if environ is None else environ
    mapping = {
        "api_key": ENV_API_KEY,
        "api_url": ENV_API_URL,
        "app_id": ENV_APP_ID,
        "org_id": ENV_ORG_ID,
        "workspace_id": ENV_WORKSPACE_ID,
    }
    found: dict[str, Any] = {key: environ[var] for key, var in mapping.items() if environ.get(var)}
    if ENV_TRACING in environ:
        found["tracing"] = parse_tracing(environ[ENV_TRACING])
    return found


def build_config(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Explicit (non-None) overrides beat the environment, which beats the defaults."""
    unknown = set(overrides) - OPTION_NAMES
    if unknown:
        raise TypeError(f"unknown flowxobservatory option(s): {', '.join(sorted(unknown))}")
    values = from_env(environ)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return Config(**values)
