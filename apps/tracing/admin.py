"""The admin of the cost table and its recalculations.

It lives in tracing, not costs, because saving a price reprices the runs (request_recalculation);
the models stay in costs, so the admin URLs and pages are unchanged (/admin/costs/modelcost/...).
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction

from apps.costs.models import ModelCost, Recalculation
from apps.tracing.repricing import request_recalculation


def plain_decimal(value: Decimal) -> str:
    """A price as a plain, trimmed decimal: "0.0025", "0.00000001", "0" — never "0E-8" or "1E+1"."""
    return format(value.normalize(), "f")


class PriceInput(forms.NumberInput):
    """A price input that shows the stored value as a plain decimal (Django shows str(Decimal): "0E-8")."""

    def format_value(self, value):
        return plain_decimal(value) if isinstance(value, Decimal) else super().format_value(value)


@admin.register(ModelCost)
class ModelCostAdmin(admin.ModelAdmin):
    list_display = [
        "model", "is_pattern", "provider", "prompt_price", "completion_price", "cached_prompt_price", "total_price",
        "valid_from", "price_date",
    ]  # fmt: skip
    list_editable = ["prompt_price", "completion_price", "cached_prompt_price", "total_price"]
    list_filter = ["provider", "is_pattern"]
    search_fields = ["model", "provider"]
    ordering = ["provider", "model", "-valid_from"]
    actions = ["recalculate"]
    formfield_overrides = {models.DecimalField: {"widget": PriceInput}}
    empty_value_display = "—"

    class Media:
        css = {"all": ["admin/observatory.css"]}  # narrower inputs and filter, wrapping headers: fits 1280 px

    def changelist_view(self, request, extra_context=None):
        # The table needs the page's whole width at 1280 px: no app list beside it (Home is in the breadcrumbs).
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    @admin.action(description="Recalculate the costs of runs of the selected models")
    def recalculate(self, request, queryset) -> None:
        for row in queryset:
            self._recalculate(request, row.model, row.is_pattern, reason=f"admin action on {row}")

    def save_model(self, request, obj, form, change) -> None:
        before = ModelCost.objects.filter(pk=obj.pk).values_list("model", "is_pattern").first() if change else None
        super().save_model(request, obj, form, change)
        # Runs of the old name are affected too when a row is renamed.
        for model, is_pattern in {(obj.model, obj.is_pattern), *([before] if before else [])}:
            self._recalculate(request, model, is_pattern, reason=f"{'changed' if change else 'added'} {obj}")

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        self._recalculate(request, obj.model, obj.is_pattern, reason=f"deleted {obj}")

    def delete_queryset(self, request, queryset) -> None:
        rows = {(row.model, row.is_pattern) for row in queryset}
        super().delete_queryset(request, queryset)
        for model, is_pattern in rows:
            self._recalculate(request, model, is_pattern, reason=f"deleted {model}")

    def _recalculate(self, request, model: str, is_pattern: bool, *, reason: str) -> None:
        with transaction.atomic():
            job = request_recalculation(model=model, is_pattern=is_pattern, reason=reason)
        kind = "matching pattern" if is_pattern else "of model"
        messages.info(request, f"Costs of runs {kind} {model} are being recalculated (recalculation #{job.pk}).")


@admin.register(Recalculation)
class RecalculationAdmin(admin.ModelAdmin):
    list_display = ["id", "scope", "reason", "state", "progress", "changed", "cost_before", "cost_after", "created_at",
                    "finished_at"]  # fmt: skip
    list_filter = ["state"]
    list_select_related = ["app"]
    readonly_fields = [f.name for f in Recalculation._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
