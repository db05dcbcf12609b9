"""The one FilterSet of the runs list (SPEC §3), shared by GET /api/run/ and the LLM Calls page."""

from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Q
from django.utils import timezone

from apps.tenancy.api.filters import DateTimeFilter, ListFilter, StrictBooleanFilter
from apps.tracing.models import TIMEOUT_AFTER, Rating, Status

ORDERINGS = ["-started_at", "started_at", "-latency_s", "latency_s", "-cost", "cost", "-total_tokens", "total_tokens"]
DEFAULT_ORDERING = "-started_at"


class RootFilter(StrictBooleanFilter):
    def apply(self, qs, flag: bool):
        return qs.filter(parent_run_id__isnull=flag)


class HasFeedbackFilter(StrictBooleanFilter):
    def apply(self, qs, flag: bool):
        rated = Q(positive_feedback=True) | Q(negative_feedback=True)
        return qs.filter(rated if flag else ~rated)


class RunFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=[*Status.choices, ("timed_out", "timed out")], method="by_status")
    type = django_filters.CharFilter(
        validators=[RegexValidator(r"^[a-z][a-z0-9_]{0,31}$", "Not a run type.")], method="by_column"
    )
    model = django_filters.CharFilter(method="by_column")
    agent = django_filters.CharFilter()
    user_email = django_filters.CharFilter()
    user_id = django_filters.CharFilter()
    name = django_filters.CharFilter()
    min_latency_s = django_filters.NumberFilter(field_name="latency_s", lookup_expr="gte")
    max_latency_s = django_filters.NumberFilter(field_name="latency_s", lookup_expr="lte")
    min_cost = django_filters.NumberFilter(field_name="pricing__cost", lookup_expr="gte")
    max_cost = django_filters.NumberFilter(field_name="pricing__cost", lookup_expr="lte")
    tags = ListFilter(method="by_tags")
    from_ = DateTimeFilter(field_name="started_at", lookup_expr="gte")
    to = DateTimeFilter(field_name="started_at", lookup_expr="lte")
    search = django_filters.CharFilter(method="by_search")
    saved = StrictBooleanFilter(field_name="saved")
    parent_run_id = django_filters.CharFilter()
    root = RootFilter()
    thread_id = django_filters.CharFilter()
    has_feedback = HasFeedbackFilter()
    feedback = django_filters.ChoiceFilter(choices=Rating.choices, method="by_feedback")
    ordering = django_filters.ChoiceFilter(choices=[(o, o) for o in ORDERINGS], method="keep")

    def by_status(self, qs, name, value):
        stale = timezone.now() - TIMEOUT_AFTER
        if value == "timed_out":
            return qs.filter(status=Status.STARTED, started_at__lt=stale)
        return qs.filter(status=value)

    def by_column(self, qs, name, value):
        qs = qs.filter(**{name: value})
        if self.requested_ordering.lstrip("-") == "cost":
            # Sorted by cost, the list walks RunCost's (app, type|model, cost) index: say it there too.
            qs = qs.filter(**{f"pricing__{name}": value})
        return qs

    def by_feedback(self, qs, name, value):
        return qs.filter(**{f"{value}_feedback": True})

    def by_tags(self, qs, name, value):
        return qs.filter(tags__any_of=value) if value else qs

    def by_search(self, qs, name, value):
        # RunSearch.text is stored lower-cased, so a plain LIKE is case-insensitive everywhere
        # and PostgreSQL's trigram index (gin_trgm_ops) serves it.
        return qs.filter(search__text__contains=value.lower()) if value.strip() else qs

    def keep(self, qs, name, value):
        return qs  # ordering is applied by the keyset paginator, which must know it

    @property
    def requested_ordering(self) -> str:
        return self.form.cleaned_data.get("ordering") or DEFAULT_ORDERING


# `from` is a Python keyword: declare the filter as `from_` and publish it under its real name.
RunFilterSet.base_filters["from"] = RunFilterSet.base_filters.pop("from_")
