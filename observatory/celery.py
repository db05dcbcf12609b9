"""The Celery app: the standard Django recipe (settings under the CELERY_ namespace), and the beat schedule."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observatory.settings")

from django.conf import settings  # noqa: E402 - after the settings module is named

app = Celery("observatory")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _settle_gc(**kwargs) -> None:
    """Each worker process, once forked with the apps loaded (observatory/gctune.py)."""
    from observatory import gctune

    gctune.settle()


# The beat schedule: one static dict, each entry explained. Times are UTC (CELERY_TIMEZONE); run
# exactly one `celery -A observatory beat` (README, Production).
app.conf.beat_schedule = {
    # Queued events are normally applied as soon as a request queues them; this catches any
    # whose task was lost (a worker killed mid-task, Redis restarted).
    "assemble-pending-events": {"task": "apps.ingestion.tasks.assemble_pending_task", "schedule": 10.0},
    # A recalculation whose worker was killed (its heartbeat stale) resumes where it stopped; one
    # whose message was lost starts (docs/COSTS.md). A cheap query on a small table.
    "resume-stalled-recalculations": {
        "task": "apps.tracing.tasks.resume_stalled_recalculations_task",
        "schedule": 10.0,
    },
    # Retention, daily at OBSERVATORY_RETENTION_HOUR:00 (default 03:00): deletes what is older than
    # each app's retention_days, keeping saved traces (docs/RETENTION.md). Safe if two ever run.
    "purge-expired": {
        "task": "apps.tracing.tasks.purge_expired_task",
        "schedule": crontab(minute=0, hour=settings.OBSERVATORY_RETENTION_HOUR),
    },
}
