"""Shared helpers of the benchmark scripts: a keep-alive HTTP client, percentiles, tables, SQL access.

Nothing here imports Django at module level: `bench/ingest.py` runs against any server with
only the standard library, orjson and psycopg; `bench/query.py` sets Django up itself.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import math
import os
import platform
import re
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
SERVER_TIMING_RE = re.compile(r"(?:^|,)\s*app\s*;(?:[^,]*?;)?\s*dur=([0-9.]+)", re.IGNORECASE)


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    ms: float  # client-observed: request written to last byte of the response read
    server_ms: float | None  # from `Server-Timing: app;dur=<ms>`, when the server sends it

    def json(self) -> Any:
        return json.loads(self.body)


class HttpClient:
    """One persistent HTTP/1.1 connection (http.client), reopened when the server closes it.

    Not thread-safe: give each worker thread its own. A request that fails at the connection
    level (the server closed an idle keep-alive connection, a reset) is retried once on a new
    connection; callers only send idempotent requests (GETs, and ingestion batches whose events
    all carry a client id, which the server de-duplicates).
    """

    def __init__(self, base_url: str, key: str | None = None, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "127.0.0.1", parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Reply:
        all_headers = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            began = time.perf_counter()
            try:
                self.conn.request(method, self.prefix + path, body=body, headers=all_headers)
                _quickack(self.conn)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
                self.reconnects += 1
                continue
            ms = (time.perf_counter() - began) * 1000
            if response.will_close:
                self.close()
            headers_out = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, data, headers_out, ms, server_timing_ms(headers_out.get("server-timing")))
        raise AssertionError("unreachable")

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _quickack(conn: http.client.HTTPConnection) -> None:
    """Acknowledge the response's first segment at once (Linux TCP_QUICKACK).

    A server that writes the headers and the body in two sends without TCP_NODELAY (Django's
    development and test servers; gunicorn sets TCP_NODELAY) would otherwise wait for the
    client's delayed ACK, ~40 ms, on every response: an artefact of the pair, not a server cost.
    """
    if conn.sock is not None and hasattr(socket, "TCP_QUICKACK"):
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def server_timing_ms(header: str | None) -> float | None:
    """`app;dur=12.3` (possibly among other metrics, possibly with a desc) -> 12.3."""
    if not header:
        return None
    match = SERVER_TIMING_RE.search(header)
    return float(match.group(1)) if match else None


# --- statistics and output --------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table; numbers right-aligned."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(not isinstance(row[i], str) or row[i] == "-" for row in rows) for i in range(len(headers))]

    def line(items):
        return "  ".join(s.rjust(w) if num else s.ljust(w) for s, w, num in zip(items, widths, numeric, strict=True))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def write_json(path: str | Path | None, data: dict) -> Path | None:
    if not path:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def publish(result: dict, report, json_path: str | Path | None, quiet: bool) -> dict:
    """Print the result's table (unless quiet), write its JSON, say where; returns the result."""
    if not quiet:
        print(report(result))
    path = write_json(json_path, result)
    if path and not quiet:
        print(f"\nJSON: {path}")
    return result


def machine_info() -> dict:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/meminfo") as meminfo:
            kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        info["ram_gib"] = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def server_parser(description: str | None) -> argparse.ArgumentParser:
    """A command line for a benchmark of a running server: --url, --key and --database-url."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("OBSERVATORY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("OBSERVATORY_API_KEY"), help="API key (obs_...)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="the server's database")
    return parser


def parse_server_args(parser: argparse.ArgumentParser, argv: list[str] | None, database_for: str) -> argparse.Namespace:
    """The arguments, or exit with a usage error when the key or the database (needed `database_for`) is missing."""
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("--key (or OBSERVATORY_API_KEY) is required")
    if not args.database_url:
        parser.error(f"--database-url (or DATABASE_URL) is required, {database_for}")
    return args


def log(quiet: bool, *args) -> None:
    if not quiet:
        print(*args, file=sys.stderr, flush=True)


# --- database access ---------------------------------------------------------------------------


def hash_key(raw_key: str) -> str:
    """How the server stores a key (apps.tenancy.models.hash_key): SHA-256 hex of the whole key."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


class Database:
    """SQL for the benchmarks: psycopg on `url`, or Django's default connection when `url` is None.

    The scripts run standalone against a server's database (a URL), and in-process from the
    smoke tests, where Django's connection already points at the test database (SQLite or
    PostgreSQL). Placeholders are `%s` in both cases.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        if url:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)
            self.vendor = "postgresql"
        else:
            from django.db import connection

            self.conn = None
            self.vendor = connection.vendor

    def _cursor(self):
        if self.conn is not None:
            return self.conn.cursor()
        from django.db import connection

        return connection.cursor()

    def query(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def execute(self, sql: str, params: list | tuple = ()) -> None:
        with self._cursor() as cursor:
            cursor.execute(sql, params)

    def raw_cursor(self):
        """A context manager yielding a psycopg cursor (PostgreSQL only), for COPY."""
        if self.conn is not None:
            return self.conn.cursor()
        from django.db import connection

        connection.ensure_connection()
        return connection.connection.cursor()

    def server_version(self) -> str:
        if self.vendor == "postgresql":
            return self.query("SHOW server_version")[0][0]
        if self.vendor == "sqlite":
            return "SQLite " + self.query("SELECT sqlite_version()")[0][0]
        return self.vendor

    def app_for_key(self, raw_key: str) -> tuple[int, str]:
        """(primary key, public UUID) of the key's default app."""
        rows = self.query(
            "SELECT a.id, a.public_id FROM tenancy_apikey k JOIN tenancy_app a ON a.id = k.app_id "
            "WHERE k.key_hash = %s AND k.revoked_at IS NULL",
            [hash_key(raw_key)],
        )
        if not rows:
            raise LookupError("no active API key with this secret in this database (wrong --database-url?)")
        pk, public_id = rows[0]
        return pk, str(uuid.UUID(str(public_id)))  # SQLite stores UUIDs as 32 hex digits

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# --- load generation -------------------------------------------------------------------------------


def drive(workers: list, *, seconds: float, gate, deadline_box: list, ready=None) -> tuple[float, float]:
    """Start worker threads that wait at `gate`, let them post for `seconds`, join them.

    `ready()`, when given, is waited for between the start and the gate (the OTLP workers
    build their first body first). Returns (elapsed seconds, this process's CPU seconds).
    """
    for worker in workers:
        worker.start()
    while ready is not None and not ready():
        time.sleep(0.01)
    cpu0 = time.process_time()
    deadline_box[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    gate.wait()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began, time.process_time() - cpu0


def load_figures(workers: list, elapsed: float, cpu: float, accepted: int) -> dict:
    """What every load level reports of its workers (`latencies`, `statuses`, `failures`, `error_samples`,
    `client`): requests, rate, latency percentiles, errors, client CPU."""
    latencies = [ms for w in workers for ms in w.latencies]
    statuses = sum((w.statuses for w in workers), Counter())
    failures = [f for w in workers for f in w.failures]
    requests = len(latencies)
    return {
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1) if elapsed else 0.0,
        "p50_ms": rounded(percentile(latencies, 50)),
        "p99_ms": rounded(percentile(latencies, 99)),
        "max_ms": rounded(max(latencies, default=None)),
        "errors": sum(n for status, n in statuses.items() if status != 200) + len(failures),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": failures[:5],
        "error_samples": [s for w in workers for s in w.error_samples][:5],
        "reconnects": sum(w.client.reconnects for w in workers),
        "client_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed else None,
        "rate": round(accepted / elapsed, 1) if elapsed else 0.0,
        "_latencies": latencies,
    }


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
