"""The admin of the cost table and its recalculations, and of saved runs.

The cost table's admin lives in tracing, not costs, because saving a price reprices the runs
(request_recalculation); the models stay in costs, so the admin URLs and pages are unchanged
(/admin/costs/modelcost/...). Saved runs are the proxy model SavedRun (/admin/tracing/savedrun/).
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db import models, transaction
from django.http import StreamingHttpResponse

from apps.costs.models import ModelCost, Recalculation
from apps.tenancy.models import App
from apps.tracing import datasets
from apps.tracing.models import SavedRun
from apps.tracing.repricing import request_recalculation
from apps.tracing.services import unsave_runs


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


# --- saved runs ------------------------------------------------------------------------------------

# What a run row carries that the list never shows: deferred, so a page of the list reads only
# the narrow columns (a run's input or output may be megabytes).
HEAVY_FIELDS = ("input", "output", "metadata", "error", "user_props")
CHOICES_LIMIT = 200  # agents / models offered by a filter
CHOICES_SAMPLE = 5000  # ... from this many of the latest saved runs


class AppFilter(admin.RelatedFieldListFilter):
    """Apps as "Organization / App": two organizations may both have a "Support Bot"."""

    def field_choices(self, field, request, model_admin):
        apps = App.objects.select_related("organization").order_by("organization__name", "name")
        return [(app.pk, f"{app.organization.name} / {app.name}") for app in apps]


class SavedValueFilter(admin.SimpleListFilter):
    """The values of one column among the latest CHOICES_SAMPLE saved runs (of the chosen app, if
    one is), up to CHOICES_LIMIT of them, alphabetically.

    A bounded read: one page of the partial index `run_saved_at`, whatever the number of runs or
    of saved runs (a DISTINCT over 100,000 saved runs took 150-200 ms; this, a few ms). A value in
    the URL that is not among them stays offered, so it shows as chosen; search finds the rest.
    """

    column = ""

    def lookups(self, request, model_admin):
        runs = SavedRun.objects.filter(saved=True)
        app = request.GET.get("app__id__exact", "")
        if app.isdigit():
            runs = runs.filter(app_id=int(app))
        latest = runs.order_by("-saved_at", "-id").values_list(self.column, flat=True)[:CHOICES_SAMPLE]
        values = sorted({value for value in latest if value})[:CHOICES_LIMIT]
        if self.value() and self.value() not in values:
            values.append(self.value())
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.column: self.value()}) if self.value() else queryset


class AgentFilter(SavedValueFilter):
    title, parameter_name, column = "agent", "agent", "agent"


class ModelFilter(SavedValueFilter):
    title, parameter_name, column = "model", "model", "model"


class SavedRunChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # Only the list defers the payloads: the run's own page shows them (without a query for each).
        return super().get_queryset(request, exclude_parameters).defer(*HEAVY_FIELDS)


@admin.register(SavedRun)
class SavedRunAdmin(admin.ModelAdmin):
    """Runs someone saved, across apps: what the retention job keeps (docs/DATASETS.md).

    One page is a fixed number of queries on a table of millions: the count and the page of
    saved runs (newest save first, on the partial index `run_saved_at`), each row with its app
    and organization (joined) and its cost (RunCost, a scalar subquery for the page's rows),
    and the filters' choices; no full count, no facets. Runs are not edited here: a run is what
    its events made it. "Unsave" and the JSONL export are actions.
    """

    list_display = ["name", "run_app", "agent", "model", "tokens", "run_cost", "saved_at"]
    list_display_links = ["name"]
    list_filter = [("app", AppFilter), AgentFilter, ModelFilter]
    list_select_related = ["app__organization"]
    search_fields = ["name", "run_id", "agent", "model", "user_id"]
    ordering = ["-saved_at", "-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["unsave", "export_jsonl"]
    empty_value_display = "—"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(saved=True).with_cost()

    def get_changelist(self, request, **kwargs):
        return SavedRunChangeList

    @admin.display(description="app", ordering="app__name")
    def run_app(self, run) -> str:
        return f"{run.app.organization.name} / {run.app.name}"

    @admin.display(description="tokens", ordering="total_tokens")
    def tokens(self, run) -> str:
        return "—" if run.total_tokens is None else f"{run.total_tokens:,}"

    @admin.display(description="cost", ordering="cost")
    def run_cost(self, run) -> str:
        return "—" if run.cost is None else f"${plain_decimal(run.cost)}"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a read-only page per run; unsaving is an action

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # saved runs are what retention keeps: unsave them, and retention decides

    def has_unsave_permission(self, request) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Unsave the selected runs", permissions=["unsave"])
    def unsave(self, request, queryset) -> None:
        count = unsave_runs(queryset)
        noun = "run is" if count == 1 else "runs are"
        messages.success(request, f"{count} {noun} no longer saved.")

    @admin.action(description="Export the selected runs as JSONL")
    def export_jsonl(self, request, queryset) -> StreamingHttpResponse:
        dataset = datasets.export(queryset, "jsonl", filename="saved-runs.jsonl")
        response = StreamingHttpResponse(dataset.lines(), content_type=datasets.CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{dataset.filename}"'
        return response
