"""Fixtures for the SDK tests: a scripted fake Observatory server and a clean SDK per test.

Self-contained on purpose: these tests also run from the repository root (``pytest
sdk/python/tests``) next to the Django suite, so nothing here may depend on Django or on
a conftest outside this directory.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# Test the working tree even when an older copy of the SDK is installed.
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

import flowxobservatory  # noqa: E402
from flowxobservatory import client as client_module  # noqa: E402

API_KEY = "obs_test_key"
APP_ID = "00000000-0000-4000-8000-000000000001"


@dataclasses.dataclass
class Reply:
    """A scripted answer: status, headers, JSON body (None: the default shape), delay."""

    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None
    delay: float = 0.0


@dataclasses.dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    raw: bytes
    payload: Any
    status: int
    at: float

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.payload.get("events", [])) if isinstance(self.payload, dict) else []


class FakeServer:
    """``http.server`` on 127.0.0.1:0 recording every request and answering from a script."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: deque[Reply] = deque()
        self.changed = threading.Condition()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def script(self, *replies: dict[str, Any]) -> None:
        """Queue answers for the next requests: dicts of :class:`Reply` fields."""
        self.replies.extend(Reply(**reply) for reply in replies)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event received, in arrival order, including retried copies."""
        with self.changed:
            return [event for request in self.requests for event in request.events]

    @property
    def accepted_events(self) -> list[dict[str, Any]]:
        """Events of requests answered 2xx."""
        with self.changed:
            return [e for r in self.requests if 200 <= r.status < 300 for e in r.events]

    def wait_for(self, predicate: Callable[[FakeServer], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
        return True

    def wait_for_events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        self.wait_for(lambda server: len(server._all_events()) >= count, timeout)
        return self.events

    def _all_events(self) -> list[dict[str, Any]]:
        return [event for request in self.requests for event in request.events]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _record(self, recorded: Recorded) -> None:
        with self.changed:
            self.requests.append(recorded)
            self.changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = raw
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(raw)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                reply = server.replies.popleft() if server.replies else Reply()
                count = len(payload.get("events", [])) if isinstance(payload, dict) else 0
                server._record(
                    Recorded(
                        self.path,
                        dict(self.headers.items()),
                        raw,
                        payload,
                        reply.status,
                        time.monotonic(),
                    )
                )
                if reply.delay:
                    time.sleep(reply.delay)
                answer = reply.body
                if answer is None:
                    answer = {"accepted": count, "rejected": 0, "errors": []}
                data = json.dumps(answer).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

        return Handler


def reset_sdk() -> None:
    """Put the SDK's process-wide state back to a pristine, unconfigured state."""
    runtime = client_module.RUNTIME
    client = runtime.client
    runtime.client = None
    if client is not None:
        client.shutdown(timeout=0.5)
    runtime.enabled = True
    runtime.exiting = False
    runtime.overrides = {}
    runtime.transport = None


@pytest.fixture(autouse=True)
def clean_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("FLOWX_OBSERVATORY_") or name == "OBSERVATORY_TRACING":
            monkeypatch.delenv(name)
    # A proxy from the environment must not intercept the loopback fake server.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    reset_sdk()
    yield
    reset_sdk()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


FAST_OPTIONS: dict[str, Any] = {
    "flush_interval": 0.05,
    "backoff_base": 0.02,
    "backoff_max": 0.1,
    "timeout": 2.0,
    "shutdown_timeout": 1.0,
}


@pytest.fixture
def setup_sdk() -> Callable[..., flowxobservatory.Client]:
    """configure() against a URL with the test key and small intervals, plus ``options``."""

    def setup(url: str, **options: Any) -> flowxobservatory.Client:
        return flowxobservatory.configure(
            api_url=url, api_key=API_KEY, app_id=APP_ID, **{**FAST_OPTIONS, **options}
        )

    return setup


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def sdk(server: FakeServer) -> flowxobservatory.Client:
    """The SDK configured against the fake server with small intervals."""
    return flowxobservatory.configure(
        api_url=server.url, api_key=API_KEY, app_id=APP_ID, **FAST_OPTIONS
    )


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def flushed(server: FakeServer) -> Callable[[], list[dict[str, Any]]]:
    """Flush the SDK and return what the fake server received."""

    def run() -> list[dict[str, Any]]:
        assert flowxobservatory.flush(5.0), "flush timed out"
        return server.events

    return run


def by_name(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event["name"] == name]


@pytest.fixture
def find() -> Callable[[list[dict[str, Any]], str], dict[str, Any]]:
    """The single event with a given name (fails when there are none or several)."""

    def one(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
        matches = by_name(events, name)
        assert len(matches) == 1, f"expected one {name}, got {len(matches)}: {events}"
        return matches[0]

    return one
