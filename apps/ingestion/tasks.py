from celery import shared_task

from apps.ingestion.assembly import assemble_pending


def schedule_assembly() -> None:
    """Wake a worker to apply queued events (called when a request that queued some commits).

    Every such request enqueues a task. Each task drains the queue, so tasks running on
    several worker processes apply a backlog in parallel (they skip each other's claimed
    events), and one that finds the queue already empty costs a single query.
    """
    assemble_pending_task.delay()


@shared_task(acks_late=True)
def assemble_pending_task() -> int:
    """Apply every queued event (idempotent: an event is applied by whoever claims it, once)."""
    return assemble_pending()
