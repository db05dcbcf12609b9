"""What each stored batch does beyond keeping its events.

LOCKS name what a batch will write (runs, conversations), locked for its transaction so
concurrent batches take turns on the same rows. HANDLERS then run in order, each taking
the `Batch`: its valid, de-duplicated events, the dedup keys of those stored for the
first time, and what earlier handlers created. Handlers whose effect is not idempotent
(a thread message, a feedback) act only on new events; the others are merges that
redelivery cannot change.
"""

from apps.threads.services import apply_chat_events, chat_lock_names, link_message_feedback, refresh_after_batch
from apps.tracing.services import apply_feedback_events, apply_run_events, mark_run_feedback, run_lock_names

LOCKS = [run_lock_names, chat_lock_names]

HANDLERS = [
    apply_run_events,  # runs first: threads read their tokens and cost
    apply_chat_events,
    apply_feedback_events,
    link_message_feedback,  # feedback on a message rates the message's run too
    refresh_after_batch,  # thread aggregates of everything touched above
    mark_run_feedback,
]
