"""Filters every list of the API shares: strict booleans, comma-or-repeated lists, UTC-checked dates.

A bad value is a form error, which the filter backend turns into a 400 naming the parameter.
"""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

BOOLEAN_CHOICES = [("true", "true"), ("false", "false"), ("1", "1"), ("0", "0")]


class ListWidget(forms.TextInput):
    """Reads `tags=a,b` and `tags=a&tags=b` (and both mixed) as one list; renders it as `a,b`."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        return [item.strip() for value in values if value for item in value.split(",") if item.strip()]

    def format_value(self, value):
        return ",".join(value) if isinstance(value, list | tuple) else super().format_value(value)


class ListField(forms.Field):
    widget = ListWidget

    def clean(self, value):
        value = super().clean(value) or []
        if len(value) > 50:
            raise forms.ValidationError("At most 50 values.")
        return value


class ListFilter(django_filters.Filter):
    field_class = ListField


class UtcDateTimeField(IsoDateTimeField):
    def clean(self, value):
        value = super().clean(value)
        try:
            # The database compares in UTC; an offset can move a value past year 1 or 9999.
            return value.astimezone(UTC) if value is not None else None
        except OverflowError:
            raise forms.ValidationError("Out of the supported date range.") from None


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date and time, checked to be comparable in UTC."""

    field_class = UtcDateTimeField


class StrictBooleanFilter(django_filters.ChoiceFilter):
    """true/false/1/0; anything else is an error (django-filter's BooleanFilter ignores it silently)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, choices=BOOLEAN_CHOICES, **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        return self.apply(qs, value in ("true", "1"))

    def apply(self, qs, flag: bool):
        return qs.filter(**{self.field_name: flag})
