"""Thread totals follow the runs they link: receivers connected in ThreadsConfig.ready()."""

from apps.threads.services import refresh_threads_with_runs


def refresh_after_repricing(sender, *, app=None, **kwargs) -> None:
    """After a cost recalculation changed costs (tracing.signals.runs_repriced), refresh thread totals."""
    refresh_threads_with_runs(app=app)
