import logging

from celery import shared_task

from apps.tracing.repricing import resume_stalled_recalculations, run_recalculation
from apps.tracing.retention import purge_expired

logger = logging.getLogger(__name__)


# Registered under its old module's name, so that messages queued before the move still run.
@shared_task(name="apps.costs.tasks.recalculate_costs_task", acks_late=True)
def recalculate_costs_task(recalculation_id: int) -> None:
    """Carry out a recorded cost recalculation (idempotent: a redelivered task does nothing)."""
    run_recalculation(recalculation_id)


@shared_task
def resume_stalled_recalculations_task() -> list[int]:
    """Beat: enqueue again the recalculations whose worker died or whose message was lost."""
    return resume_stalled_recalculations()


@shared_task(acks_late=True)
def purge_expired_task() -> int:
    """The retention job (beat, daily): delete what is past each app's retention; returns the runs deleted.

    Safe to redeliver or to run twice at once: a purge leaves an app another purge holds, and
    every batch it commits is consistent on its own (docs/RETENTION.md).
    """
    results = purge_expired()
    runs = sum(result.runs for result in results)
    logger.info("retention: %s runs deleted in %s apps", runs, sum(1 for r in results if r.cutoff is not None))
    return runs
