"""Process lifecycle: the exit hook flushes (within a bound) and fork() gets a fresh consumer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowxobservatory as fo

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD_SCRIPT = textwrap.dedent(
    """
    import flowxobservatory as fo

    # A long interval: nothing is sent before exit unless the exit hook flushes.
    fo.configure(flush_interval=60, batch_size=1000, timeout=5.0)

    @fo.tool("child-tool")
    def work(i):
        return i * 2

    @fo.agent("child-agent")
    def run():
        return [work(i) for i in range(3)]

    run()
    print("child done", flush=True)
    """
)


def run_child(url: str, extra_env: dict[str, str] | None = None) -> tuple[float, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "FLOWX_OBSERVATORY_API_URL": url,
        "FLOWX_OBSERVATORY_API_KEY": "child-key",
        "NO_PROXY": "127.0.0.1",
        **(extra_env or {}),
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "child done" in done.stdout
    return elapsed, done.stderr


def test_exit_hook_flushes_queued_events(server):
    run_child(server.url)
    names = [e["name"] for e in server.events]
    assert names.count("tool_start") == 3
    assert names[0] == "agent_start"
    assert names[-1] == "agent_end"
    assert server.requests[0].headers["Authorization"] == "Bearer child-key"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections (via the backlog) but never answers: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_exit_is_bounded_when_the_server_hangs(silent_server):
    # HTTP timeout 5 s in the child; the exit hook must give up after shutdown_timeout=2 s.
    elapsed, stderr = run_child(silent_server)
    assert elapsed < 4.5, f"child took {elapsed:.1f}s to exit"
    assert elapsed >= 1.5  # it did wait for the bounded flush
    assert "unsent" in stderr  # the warning at shutdown says events were left


def test_exit_is_bounded_when_the_server_is_down(dead_url):
    elapsed, _ = run_child(dead_url)
    assert elapsed < 4.5, f"child took {elapsed:.1f}s to exit"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# Python >= 3.12 warns about fork() in a process with threads (the fake server's); the
# child only runs SDK code and leaves through os._exit, which is the supported pattern.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_gets_its_own_consumer_and_no_duplicates(server, setup_sdk):
    # The parent's events stay queued across the fork (long interval, big batches).
    setup_sdk(server.url, flush_interval=60, batch_size=1000)
    fo.track_event("parent-event", run_id="parent-run")
    assert fo.get_client().stats.pending == 1

    pid = os.fork()
    if pid == 0:  # child: must leave through os._exit, never back into pytest
        code = 1
        try:
            stats = fo.get_client().stats
            fo.track_event("child-event", run_id="child-run", pid=os.getpid())
            delivered = fo.flush(5)
            after = fo.get_client().stats
            code = 0 if (stats.pending == 0 and delivered and after.sent == 1) else 2
        finally:
            os._exit(code)

    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [e["name"] for e in server.events] == ["child-event"]
    assert server.events[0]["pid"] == pid

    assert fo.flush(5)
    names = [e["name"] for e in server.events]
    assert sorted(names) == ["child-event", "parent-event"]  # the parent's event exactly once
