"""The analytics query: the runs list's own filters (a subset of RunFilterSet) plus tz, interval, group_by."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import django_filters
from django import forms

from apps.tracing.filters import RunFilterSet

# The runs list's filters that select what analytics aggregates; its others (ordering, search, ...) are ignored.
RUN_FILTERS = ("from", "to", "agent", "model", "type", "status", "tags", "user_email", "user_id")
INTERVALS = ("hour", "day")
GROUPS = {"model": "model", "agent": "agent", "user": "user_id"}  # group_by -> the Run column


class TimeZoneField(forms.CharField):
    """An IANA time zone name (Europe/Paris), cleaned to a ZoneInfo (DST rules included)."""

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a zone key at all ("../x", "")
            raise forms.ValidationError("Not a known IANA time zone (e.g. Europe/Paris).") from None


class TimeZoneFilter(django_filters.CharFilter):
    field_class = TimeZoneField


class AnalyticsFilterSet(RunFilterSet):
    """RunFilterSet's RUN_FILTERS (same fields, same messages), and the shape of the aggregates.

    One FilterSet, so that every invalid parameter is reported at once, in the runs API's shape.
    It filters RunCost rows (tracing.models: the narrow copy of each run that analytics reads),
    which carry the run's own columns under the same names, except `tags` and `user_email`: those
    two are read through the join to the run.
    """

    user_email = django_filters.CharFilter(field_name="run__user_email")

    def by_tags(self, qs, name, value):
        return qs.filter(run__tags__any_of=value) if value else qs

    tz = TimeZoneFilter(method="keep", help_text="IANA time zone of the buckets; default UTC.")
    interval = django_filters.ChoiceFilter(
        choices=[(i, i) for i in INTERVALS], method="keep", help_text="Default: hour up to 2 days, else day."
    )
    group_by = django_filters.ChoiceFilter(choices=[(g, g) for g in GROUPS], method="keep", help_text="Default: model.")


OWN_FILTERS = ("user_email", "tz", "interval", "group_by")
AnalyticsFilterSet.base_filters = {
    **{name: RunFilterSet.base_filters[name] for name in RUN_FILTERS if name not in OWN_FILTERS},
    **{name: AnalyticsFilterSet.base_filters[name] for name in OWN_FILTERS},
}
