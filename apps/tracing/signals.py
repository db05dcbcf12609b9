"""Signals sent by tracing, for the apps above it to follow (tracing imports none of them)."""

from django.dispatch import Signal

runs_repriced = Signal()  # sent with app=<App or None for every app> after a cost recalculation changed costs
