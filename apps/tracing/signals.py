"""Signals sent by tracing, for the apps above it to follow (tracing imports none of them)."""

from django.dispatch import Signal

runs_repriced = Signal()  # sent with app=<App or None for every app> after a cost recalculation changed costs

# The retention purge (tracing.retention, docs/RETENTION.md), for each app whose retention is set;
# both are sent with app, cutoff (what is older expires) and dry_run (count it, change nothing).
#
# First, outside any transaction, also with batch_size and tally (a callable taking PurgeResult
# field names, `tally(messages=3)`, that adds to the app's result): delete your own expired rows,
# keeping those that `retention.protected_run_ids` says are in the trace of a saved run, in
# batches through `retention.run_batches` (each its own transaction holding the app's purge lock).
retention_due = Signal()
# Then inside the transaction of each batch of deleted runs, also with run_ids (those just
# deleted): bring what refers to them up to date in that transaction; return a dict of counts.
runs_purged = Signal()
