"""The FilterSet of the threads list, shared by GET /api/threads/ and the Threads page."""

import django_filters

from apps.tenancy.api.filters import DateTimeFilter, StrictBooleanFilter


class ThreadFilterSet(django_filters.FilterSet):
    agent = django_filters.CharFilter()
    user_id = django_filters.CharFilter()
    user_email = django_filters.CharFilter()
    has_feedback = StrictBooleanFilter(field_name="has_feedback")
    # A thread is in the time range when its last activity is.
    from_ = DateTimeFilter(field_name="ended_at", lookup_expr="gte")
    to = DateTimeFilter(field_name="ended_at", lookup_expr="lte")


ThreadFilterSet.base_filters["from"] = ThreadFilterSet.base_filters.pop("from_")
