"""The model cost table: USD per 1,000 tokens, by model and the day a price took effect."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

PRICE = {"max_digits": 14, "decimal_places": 8, "validators": [MinValueValidator(0)]}


class ModelCost(models.Model):
    """One price of one model, in force from `valid_from` (or always, when empty)."""

    model = models.CharField(max_length=200, help_text="The model name as reported in events.")
    prompt_price = models.DecimalField("prompt USD / 1K tokens", **PRICE)
    completion_price = models.DecimalField("completion USD / 1K tokens", **PRICE)
    total_price = models.DecimalField(
        "blended USD / 1K tokens",
        null=True,
        blank=True,
        help_text="For events that carry only total_tokens. Empty: the prompt price is used.",
        **PRICE,
    )
    valid_from = models.DateField(null=True, blank=True, help_text="First day (UTC) the price applies. Empty: always.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "valid_from"], name="modelcost_unique_model_day"),
        ]

    def __str__(self) -> str:
        since = f" from {self.valid_from}" if self.valid_from else ""
        return f"{self.model}{since}"
