"""The model cost table: USD per 1,000 tokens, by model (or model-name pattern) and start day."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

PRICE = {"max_digits": 14, "decimal_places": 8, "validators": [MinValueValidator(0)]}
# Costs in USD, to 10 decimals. The largest one run can have (2^53 - 1 prompt and completion
# tokens at the highest price above) is about 1.8e19; 24 integer digits leave room for sums.
COST = {"max_digits": 34, "decimal_places": 10}
# Regex syntax that carries no literal characters, for ranking how specific a pattern is.
_REGEX_SYNTAX = re.compile(r"\\[dDwWsSbB]|\\.|[.^$*+?{}\[\]|()]|\d+(?=[,}])")


class ModelCost(models.Model):
    """One price of one model, in force from `valid_from` (or always, when empty).

    `model` is an exact model name, or — with `is_pattern` — a regular expression matched
    against the whole model name (e.g. `gpt-4o-\\d{4}-\\d{2}-\\d{2}` for dated snapshots).
    See `costs.pricing.PriceBook` for how a run's row is chosen.
    """

    model = models.CharField(max_length=200, help_text="The model name as reported in events, or a pattern.")
    is_pattern = models.BooleanField(
        "pattern", default=False, help_text="Match `model` as a regular expression against the whole model name."
    )
    provider = models.CharField(max_length=50, blank=True, default="")
    prompt_price = models.DecimalField("prompt USD / 1K tokens", **PRICE)
    completion_price = models.DecimalField("completion USD / 1K tokens", **PRICE)
    cached_prompt_price = models.DecimalField(
        "cached prompt USD / 1K tokens",
        null=True,
        blank=True,
        help_text="For prompt tokens served from the provider's cache. Empty: the prompt price.",
        **PRICE,
    )
    total_price = models.DecimalField(
        "blended USD / 1K tokens",
        null=True,
        blank=True,
        help_text="For events that carry only total_tokens. Empty: the prompt price is used.",
        **PRICE,
    )
    valid_from = models.DateField(null=True, blank=True, help_text="First day (UTC) the price applies. Empty: always.")
    price_date = models.DateField(null=True, blank=True, help_text="When this price was taken from the provider.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "valid_from"], name="modelcost_unique_model_day"),
            # NULLs are distinct in the constraint above, so "always" rows need their own.
            models.UniqueConstraint(
                fields=["model"], condition=Q(valid_from__isnull=True), name="modelcost_unique_model_always"
            ),
        ]

    def __str__(self) -> str:
        since = f" from {self.valid_from}" if self.valid_from else ""
        return f"{self.model}{' (pattern)' if self.is_pattern else ''}{since}"

    def clean(self) -> None:
        if self.is_pattern:
            try:
                re.compile(self.model)
            except re.error as exc:
                raise ValidationError({"model": f"Not a valid regular expression: {exc}."}) from None
        same_day = ModelCost.objects.filter(model=self.model, valid_from=self.valid_from).exclude(pk=self.pk)
        if self.model and same_day.exists():
            day = self.valid_from or "always (no start day)"
            raise ValidationError({"valid_from": f"{self.model} already has a price for {day}."})

    def matches(self, model: str) -> bool:
        return re.fullmatch(self.model, model) is not None if self.is_pattern else self.model == model

    @property
    def specificity(self) -> int:
        """How many literal characters a pattern has: the more, the more specific it is."""
        return len(_REGEX_SYNTAX.sub("", self.model))


class Recalculation(models.Model):
    """One run of the cost recalculation job: its scope, progress and summary (shown in the admin)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    model = models.CharField(max_length=200, blank=True, default="", help_text="Empty: every model.")
    is_pattern = models.BooleanField("pattern", default=False)
    app = models.ForeignKey("tenancy.App", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    since = models.DateTimeField(null=True, blank=True, help_text="Only runs started at or after this time.")
    dry_run = models.BooleanField(default=False)
    reason = models.CharField(max_length=200, blank=True, default="")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="LLM runs in scope.")
    examined = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    cost_before = models.DecimalField(**COST, default=0)
    cost_after = models.DecimalField(**COST, default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The running job's lease: the worker that claimed `attempt` writes `heartbeat_at` with each
    # chunk it commits, and `resume_from`, the first run id not repriced yet. A job whose heartbeat
    # is older than OBSERVATORY_RECALC_STALE_SECONDS lost its worker: the next claim resumes it there.
    attempt = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    resume_from = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Recalculation #{self.pk} ({self.scope})"

    @property
    def scope(self) -> str:
        parts = [f"{'pattern' if self.is_pattern else 'model'} {self.model}" if self.model else "all models"]
        if self.app_id:
            parts.append(f"app {self.app}")
        if self.since:
            parts.append(f"since {self.since:%Y-%m-%d %H:%M}")
        return ", ".join(parts)

    @property
    def progress(self) -> str:
        return f"{self.examined}/{self.total}" if self.total else "-"
