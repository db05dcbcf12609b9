"""Conversations: chat events grouped into threads (SPEC §5)."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q

from apps.costs.models import COST
from apps.tenancy.models import App, TenantQuerySet

# A message without a thread_id joins its agent and user's thread if that thread's last
# message is at most this much older (see docs/THREADS.md for out-of-order arrivals).
WINDOW = timedelta(minutes=30)
PREVIEW_CHARS = 200


class Thread(models.Model):
    """A conversation: the client's `thread_id`, or a window of one agent and user's messages.

    The counters and totals are derived from the messages (and their linked runs) and kept
    by `threads.services.refresh_threads` whenever any of those change.
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="threads", db_index=False)
    thread_id = models.CharField(max_length=128, null=True, blank=True, help_text="The client's id, if it sent one.")
    agent = models.CharField(max_length=200, null=True, blank=True)
    user_id = models.CharField(max_length=200, null=True, blank=True)
    user_email = models.CharField(max_length=254, null=True, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(help_text="Time of the last message: the thread's last activity.")
    message_count = models.PositiveIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    total_cost = models.DecimalField(**COST, default=0)
    preview = models.CharField(max_length=PREVIEW_CHARS, blank=True, default="")
    has_feedback = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["app", "thread_id"], name="thread_unique_client_id", condition=Q(thread_id__isnull=False)
            )
        ]
        indexes = [
            models.Index(fields=["app", "-ended_at", "-id"], name="thread_app_activity"),
            models.Index(fields=["app", "agent", "user_id", "-ended_at"], name="thread_app_agent_user"),
            models.Index(fields=["app", "user_email", "-ended_at"], name="thread_app_email"),
            models.Index(fields=["app", "-ended_at"], name="thread_app_feedback", condition=Q(has_feedback=True)),
        ]

    def __str__(self) -> str:
        return self.thread_id or f"thread {self.pk}"


class ThreadMessage(models.Model):
    """One `chat` event: a message of a thread, maybe linked to the run that produced it."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages", db_index=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    dedup_key = models.CharField(max_length=64)
    message_id = models.CharField(max_length=128, null=True, blank=True)
    role = models.CharField(max_length=10)
    content = models.JSONField(null=True, blank=True)
    preview = models.CharField(max_length=PREVIEW_CHARS, blank=True, default="")
    timestamp = models.DateTimeField()
    run_id = models.CharField(max_length=128, null=True, blank=True)
    # Token counts and cost carried by the chat event itself (used when no run is linked).
    total_tokens = models.BigIntegerField(null=True, blank=True)
    cost = models.DecimalField(**COST, null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "dedup_key"], name="message_dedup_per_app")]
        indexes = [
            models.Index(fields=["thread", "timestamp", "id"], name="message_thread_time"),
            models.Index(fields=["app", "message_id"], name="message_app_id", condition=Q(message_id__isnull=False)),
            models.Index(fields=["app", "run_id"], name="message_app_run", condition=Q(run_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.preview[:40]}"
