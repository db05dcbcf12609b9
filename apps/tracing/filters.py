"""The one FilterSet of the runs list (SPEC §3), shared by GET /api/run/ and the LLM Calls page."""

from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Q, Value
from django.db.models.functions import Coalesce, StrIndex
from django.utils import timezone

from apps.tenancy.api.filters import DateTimeFilter, ListFilter, StrictBooleanFilter
from apps.tracing.models import TIMEOUT_AFTER, Rating, RunCost, Status

# With a cost bound, a list sorted otherwise than by cost first looks for up to this many
# matching runs in RunCost's own indexes; when there are no more, it lists just those.
COST_PROBE = 1000
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
    """`app` (the app whose runs `queryset` holds) lets cost bounds use RunCost's indexes directly."""

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

    def __init__(self, data=None, queryset=None, *, app=None, **kwargs):
        super().__init__(data, queryset, **kwargs)
        self.app = app

    def filter_queryset(self, queryset):
        return self.few_by_cost(super().filter_queryset(queryset))

    def few_by_cost(self, qs):
        """With min_cost/max_cost, sorted by anything but cost: when at most COST_PROBE runs match
        (probed on RunCost's (app[, type|model], cost) index), list only those, by id.

        The planner cannot see that costs and types are correlated across the two tables (LLM
        calls cost something, every other run 0), so for `type=llm&max_cost=0.0001` it expected
        a page within a few hundred runs and walked all 400,000 LLM runs to find none (1.9 s at
        1,000,000 runs). Many matches keep the ordinary plan, which then fills a page quickly.
        """
        data = self.form.cleaned_data
        bounds = {
            f"cost__{lookup}": data[name]
            for name, lookup in (("min_cost", "gte"), ("max_cost", "lte"))
            if data.get(name) is not None
        }
        if not bounds or self.app is None or self.requested_ordering.lstrip("-") == "cost":
            return qs
        columns = {name: data[name] for name in ("type", "model") if data.get(name)}
        matches = RunCost.objects.for_app(self.app).filter(**bounds, **columns).values_list("run", flat=True)
        few = list(matches[: COST_PROBE + 1])
        return qs.filter(pk__in=few) if len(few) <= COST_PROBE else qs

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
        # RunSearch is stored lower-cased, so a plain LIKE is case-insensitive everywhere. Each
        # word of the search is in the run's words (`text`, where PostgreSQL's trigram index
        # finds the candidates), and the whole search in its text (`full_text`, else `text`).
        needle = value.lower()
        words = needle.split()
        if not words:
            return qs
        in_words = Q(*(Q(search__text__contains=word) for word in words))
        if words == [needle]:
            # One word is in a text exactly when it is in its words (it cannot span their spaces);
            # the text's condition would only lower the planner's estimate of the matches, and a
            # common word would then be sorted from all its runs instead of read in order.
            return qs.filter(in_words)
        # Found by position, not LIKE: PostgreSQL then assumes a third of the candidates match rather
        # than multiplying the two LIKEs' estimates as if the words and the text were unrelated.
        whole = StrIndex(Coalesce("search__full_text", "search__text"), Value(needle))
        return qs.alias(search_at=whole).filter(in_words, search_at__gt=0)

    def keep(self, qs, name, value):
        return qs  # ordering is applied by the keyset paginator, which must know it

    @property
    def requested_ordering(self) -> str:
        return self.form.cleaned_data.get("ordering") or DEFAULT_ORDERING


# `from` is a Python keyword: declare the filter as `from_` and publish it under its real name.
RunFilterSet.base_filters["from"] = RunFilterSet.base_filters.pop("from_")
