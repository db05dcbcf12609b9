from celery import shared_task

from apps.tracing.repricing import run_recalculation


# Registered under its old module's name, so that messages queued before the move still run.
@shared_task(name="apps.costs.tasks.recalculate_costs_task", acks_late=True)
def recalculate_costs_task(recalculation_id: int) -> None:
    """Carry out a recorded cost recalculation (idempotent: a redelivered task does nothing)."""
    run_recalculation(recalculation_id)
