"""bench/faults.py, run whole: PostgreSQL stopped under load, workers killed mid-batch, mid-recalculation
and mid-purge, on a private PostgreSQL cluster with gunicorn, a Celery worker and beat (docs/OPERATIONS.md).

It builds its own cluster, so it does not depend on the suite's database: CI runs it once, on the
PostgreSQL pass. About a minute.
"""

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL") or connection.vendor != "postgresql",
    reason="needs Redis (REDIS_URL) and PostgreSQL's tools; runs once per CI, on the PostgreSQL pass",
)


def test_faults_lose_nothing_and_count_nothing_twice(tmp_path):
    out = tmp_path / "faults.json"
    redis_url = urlsplit(os.environ["REDIS_URL"])._replace(path="/12").geturl()  # its own database, flushed
    done = subprocess.run(
        [sys.executable, "bench/faults.py", "--redis-url", redis_url, "--json", str(out)],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.exists(), done.stdout[-3000:] + done.stderr[-5000:]
    result = json.loads(out.read_text())
    assert not result["failed"] and done.returncode == 0, done.stdout[-4000:]
    for mode in ("worker", "inline"):
        down = result["postgres_down"][mode]
        assert down["statuses"]["503"] > 0 and down["statuses"]["200"] > 0 and down["accepted_events"] > 0
    killed = result["worker_killed"]
    assert killed["batch"]["queue_left"] and killed["recalculation"]["attempts"] >= 2
    assert killed["purge"]["runs_when_killed"] > killed["purge"]["runs_after"]
