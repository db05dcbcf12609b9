import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from apps.ingestion.assembly import assemble_pending

logger = logging.getLogger(__name__)

# Set while a wake-up task is queued and not started yet; expires in case its message is
# lost (the beat entry applies such events meanwhile).
WAKE_FLAG = "ingestion:assembly-woken"
WAKE_FLAG_SECONDS = 10


def schedule_assembly() -> None:
    """Wake a worker to apply queued events (called when a request that queued some commits).

    One queued wake-up is enough: a task applies everything committed before it starts, so
    a request that finds one still waiting (the flag, in the shared cache) enqueues
    nothing; at high request rates that is most of them. A task clears the flag as it
    starts, so the next request wakes another worker, and several workers apply a backlog
    in parallel (they skip each other's claimed events).
    """
    try:
        if cache.add(WAKE_FLAG, 1, WAKE_FLAG_SECONDS):
            assemble_pending_task.delay()
    except (RedisError, KombuError) as exc:
        # The events are safe, queued in the database: the beat's entry, or the first request
        # once Redis is back, wakes a worker to apply them.
        logger.warning("could not wake an assembly worker (%s); the queued events wait", exc)


@shared_task(acks_late=True)
def assemble_pending_task() -> int:
    """Apply the queued events (idempotent: an event is applied by whoever claims it, once).

    For OBSERVATORY_ASSEMBLY_TASK_SECONDS at most: under a steady backlog a task that ran until
    the queue was empty kept its worker process for good, and purges and recalculations queued
    behind it waited (bench/soak.py saw 11 minutes). Past its time it wakes another worker, whose
    task goes to the back of the queue, and returns.
    """
    cache.delete(WAKE_FLAG)
    began = time.monotonic()
    done = assemble_pending(seconds=settings.OBSERVATORY_ASSEMBLY_TASK_SECONDS)
    if time.monotonic() - began >= settings.OBSERVATORY_ASSEMBLY_TASK_SECONDS:
        schedule_assembly()
    return done
