"""Thread totals follow the runs they link: receivers connected in ThreadsConfig.ready()."""

from apps.threads.services import purge_expired_messages, refresh_threads_of_purged_runs, refresh_threads_with_runs


def refresh_after_repricing(sender, *, app=None, **kwargs) -> None:
    """After a cost recalculation changed costs (tracing.signals.runs_repriced), refresh thread totals."""
    refresh_threads_with_runs(app=app)


def purge_messages(sender, *, app, cutoff, dry_run, batch_size, tally, **kwargs) -> None:
    """An app's retention is due (tracing.signals.retention_due): its expired messages and empty threads go."""
    purge_expired_messages(app, cutoff, dry_run=dry_run, batch_size=batch_size, tally=tally)


def refresh_after_purge(sender, *, app, cutoff, run_ids, dry_run, **kwargs) -> dict[str, int]:
    """A batch of runs was deleted (tracing.signals.runs_purged): threads that linked them are refreshed."""
    return refresh_threads_of_purged_runs(app, run_ids, cutoff=cutoff, dry_run=dry_run)
