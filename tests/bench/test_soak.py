"""The CI smoke of bench/soak.py: a minute of every load at once on a stack of its own, every check holding.

It starts its own PostgreSQL cluster, gunicorn, Celery worker and beat (bench/stack.py) and uses
the Redis server of REDIS_URL with a database of its own (12, flushed), so it does not depend on
the suite's database: it runs once, on CI's PostgreSQL pass. It asserts the checks, never a speed.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from bench import soak

pytestmark = pytest.mark.redis


def soak_redis_url() -> str:
    """REDIS_URL's server, database 12: the soak flushes it, so not a database anyone else uses."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs a real Redis server: set REDIS_URL (CI does)")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("runs once per CI run, on the PostgreSQL pass (it starts a PostgreSQL cluster of its own)")
    if not shutil.which("pg_config"):
        pytest.skip("needs PostgreSQL's server binaries (pg_config --bindir) for a private cluster")
    own = urlunsplit(urlsplit(url)._replace(path="/12"))
    try:
        redis.Redis.from_url(own, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at REDIS_URL is not reachable: {exc}")
    return own


def test_a_minute_of_mixed_load_loses_nothing_and_no_process_grows(tmp_path):
    result = soak.run(seconds=60, redis_url=soak_redis_url(), json_path=tmp_path / "soak.json", quiet=True)

    failed = [name for name, ok in result["checks"].items() if not ok]
    assert not failed, f"{failed}\n\n{soak.report(result)}"
    assert result["passed"] and json.loads((tmp_path / "soak.json").read_text())["passed"]
    # Every part of the load ran: the checks would hold vacuously otherwise.
    verified = result["verification"]
    assert result["ingest"]["events_accepted"] == verified["events"]["accepted"] + verified["old"]["events_accepted"]
    assert verified["runs"]["accepted"] > 0 and verified["messages"]["accepted"] > 0
    assert result["reads"]["api"] > 0 and result["reads"]["page"] > 0
    assert {e["endpoint"] for e in result["endpoints"]} >= {"page: run", "page: thread", "run with its trace"}
    assert result["recalcs"]["requested"] >= 2 and result["purges"]["requested"] >= 2
    assert result["purges"]["deleted_during_load"] > 0 and verified["old"]["runs_accepted"] > 0
    assert {row["process"] for row in result["rss"]} == {
        "web main", "web child", "worker main", "worker child", "beat main"
    }  # fmt: skip
    assert "verdict: PASS" in soak.report(result)

    # The checks read the figures: a lost event, a stale cost or a grown process fails them.
    stored = "every accepted event, run and chat message stored"
    for path, value, check in [
        ("verification.events.missing", 1, stored),
        ("verification.runs.stored", verified["runs"]["stored"] - 1, stored),
        ("verification.old.runs_left", 1, "nothing left of the old traces"),
        ("recalcs.wrong_cost", 1, "every soak-model run at the last price"),
        ("recalcs.waits_s", [0.1, 600.0], "every recalculation started within 60 s and done"),
        ("purges.waits_s", [0.1, None], "every purge started within 60 s, old runs deleted during the load"),
        ("errors.count", 1, "no HTTP error, no rejected event"),
        ("exited", ["web"], "no process exited or was replaced"),
    ]:
        broken = copy.deepcopy(result)
        *parents, name = path.split(".")
        target = broken
        for key in parents:
            target = target[key]
        target[name] = value
        assert not soak.checks(broken)[check], path
    broken = copy.deepcopy(result)
    broken["rss"][0]["flat"] = False
    assert not soak.checks(broken)["RSS flat after the warm-up"]
