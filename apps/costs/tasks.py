from celery import shared_task

from apps.costs.recalc import run_recalculation


@shared_task(acks_late=True)
def recalculate_costs_task(recalculation_id: int) -> None:
    """Carry out a recorded cost recalculation (idempotent: a redelivered task does nothing)."""
    run_recalculation(recalculation_id)
