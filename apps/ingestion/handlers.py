"""What each stored batch does beyond keeping its events, in order.

A handler takes (events, new_keys): the batch's valid, de-duplicated events and the dedup
keys of those stored for the first time. Handlers whose effect is not idempotent (a thread
message, a feedback) act only on new events.
"""

from apps.tracing.services import apply_run_events

HANDLERS = [
    apply_run_events,
]
