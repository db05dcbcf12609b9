"""The analytics responses, for the OpenAPI schema: the views write the selectors' rows directly
(`plain`), as the runs list does, rather than field by field through DRF."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from rest_framework import serializers

from apps.costs.models import COST


def plain(row: dict) -> dict:
    """A selector's row as JSON values: costs as numbers (USD), datetimes as ISO 8601 with their offset."""
    return {name: _json(value) for name, value in row.items()}


def plain_rows(rows: list[dict]) -> list[dict]:
    return [plain(row) for row in rows]


def plain_buckets(buckets: list[dict]) -> list[dict]:
    """`plain` for usage's buckets, which may be tens of thousands (a day per user): each interval's
    start (one datetime object, shared by its keys) is written once, each cost turned to a number."""
    iso: dict[int, str] = {}
    return [
        {**bucket, "start": iso.get(id(start)) or iso.setdefault(id(start), start.isoformat()),
         "cost": float(bucket["cost"])}
        for bucket in buckets
        for start in [bucket["start"]]
    ]  # fmt: skip


def _json(value):
    if isinstance(value, Decimal):
        return float(value)
    return value.isoformat() if isinstance(value, datetime) else value


def _cost(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(**COST, coerce_to_string=False, **kwargs)


class UsageBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the interval, in `tz` (with its offset).")
    key = serializers.CharField(help_text='The model, agent or user id (`group_by`); "" for none.')
    runs = serializers.IntegerField()
    cost = _cost(help_text="USD.")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    errors = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(help_text="errors / runs, 0 to 1.")
    latency_p50_s = serializers.FloatField(allow_null=True)
    latency_p95_s = serializers.FloatField(allow_null=True)
    latency_p99_s = serializers.FloatField(allow_null=True)
    cost = _cost(help_text="USD.")
    avg_cost = _cost(help_text="USD per call / root run.")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    users = serializers.IntegerField(help_text="Distinct user ids.")


class ModelStatsSerializer(StatsSerializer):
    model = serializers.CharField(help_text='"" for calls without a model.')
    calls = serializers.IntegerField()


class AgentStatsSerializer(StatsSerializer):
    agent = serializers.CharField()
    runs = serializers.IntegerField(help_text="Root runs of the agent.")
    avg_llm_calls = serializers.FloatField(help_text="LLM calls carrying the agent, per root run.")


class ErrorGroupSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="Normalised: ids and numbers masked.")
    count = serializers.IntegerField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    model = serializers.CharField(allow_null=True, help_text="The most common model.")
    agent = serializers.CharField(allow_null=True, help_text="The most common agent.")
    example_run_id = serializers.CharField(help_text="The newest run with this message.")


class UsageSerializer(serializers.Serializer):
    buckets = UsageBucketSerializer(many=True)


class ModelsSerializer(serializers.Serializer):
    models = ModelStatsSerializer(many=True)


class AgentsSerializer(serializers.Serializer):
    agents = AgentStatsSerializer(many=True)


class ErrorsSerializer(serializers.Serializer):
    errors = ErrorGroupSerializer(many=True)
