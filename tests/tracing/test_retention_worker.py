"""The retention job as it runs in production: Celery beat sends it, a real worker runs it, against Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.tenancy.models import App
from apps.threads.models import Thread
from apps.tracing.models import Event, Run
from apps.tracing.tasks import purge_expired_task
from observatory.celery import app as celery_app
from tests.conftest import TEST_QUEUE
from tests.helpers import ingest

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]

# The project's beat schedule, with the retention entry due every second instead of daily, sending
# to this test process's queue: the entry's task and options are the real ones.
BEAT_APP = textwrap.dedent(
    """
    import os

    from observatory.celery import app

    entry = app.conf.beat_schedule["purge-expired"]
    assert entry["schedule"].hour == {int(os.environ["OBSERVATORY_RETENTION_HOUR"])}, entry
    app.conf.beat_schedule = {"purge-expired": {**entry, "schedule": 1.0}}
    app.conf.task_default_queue = os.environ["RETENTION_TEST_QUEUE"]
    """
)


def expired_data(app) -> None:
    App.objects.filter(pk=app.pk).update(retention_days=30)
    old = (timezone.now() - timedelta(days=40)).isoformat()
    ingest(
        app,
        {"name": "llm_call", "run_id": "old", "timestamp": old, "model": "m", "total_tokens": 5},
        {"name": "chat", "role": "user", "content": "hi", "thread_id": "t", "timestamp": old},
        {"name": "llm_call", "run_id": "new", "model": "m", "total_tokens": 5},
    )


def wait_until(check, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_beat_triggers_the_job_and_a_worker_deletes_the_expired_rows(acme_app, celery_worker, tmp_path):
    expired_data(acme_app)
    (tmp_path / "retention_beat.py").write_text(BEAT_APP)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "observatory.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "x",
        "OBSERVATORY_RETENTION_HOUR": "5",
        "RETENTION_TEST_QUEUE": TEST_QUEUE,
    }
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "retention_beat", "beat", "--loglevel=info",
         "--schedule", str(tmp_path / "beat-schedule"), "--pidfile="],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        gone = wait_until(lambda: not Run.objects.filter(run_id="old").exists())
    finally:
        beat.terminate()
        output = beat.communicate(timeout=30)[0]
        with celery_app.connection_for_write() as conn:  # what beat sent meanwhile, not run yet (ours only)
            conn.default_channel.queue_purge(TEST_QUEUE)
    assert gone, f"the expired run is still there; beat said:\n{output}"
    assert "Sending due task purge-expired (apps.tracing.tasks.purge_expired_task)" in output
    assert set(Run.objects.values_list("run_id", flat=True)) == {"new"}
    assert not Event.objects.filter(run_id="old").exists()
    assert wait_until(lambda: not Thread.objects.exists())  # the thread's message expired with it


def test_a_worker_runs_the_task_from_the_broker(acme_app, celery_worker):
    expired_data(acme_app)
    purge_expired_task.delay()
    assert wait_until(lambda: not Run.objects.filter(run_id="old").exists() and not Thread.objects.exists())
    assert set(Run.objects.values_list("run_id", flat=True)) == {"new"}
