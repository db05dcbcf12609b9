from datetime import datetime

from rest_framework import serializers

from apps.costs.models import COST
from apps.tracing.models import Event, Feedback, Run

RUN_FIELDS = [
    "run_id", "parent_run_id", "app_id", "type", "name", "agent", "status", "started_at", "ended_at", "latency_s",
    "model", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "tags", "user_id", "user_email",
    "saved", "thread_id", "input", "output", "error", "metadata",
]  # fmt: skip


def _when(value: datetime | None) -> str | None:
    """A datetime as DRF writes it: ISO 8601, UTC as `Z`."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def run_dict(run: Run, app_id: str) -> dict:
    """A run as SPEC §3 lists it, built directly: serializing hundreds of runs per request
    field by field through DRF costs more than the database work of the whole request."""
    return {
        "run_id": run.run_id, "parent_run_id": run.parent_run_id, "app_id": app_id, "type": run.type,
        "name": run.name, "agent": run.agent, "status": run.status, "started_at": _when(run.started_at),
        "ended_at": _when(run.ended_at), "latency_s": run.latency_s, "model": run.model,
        "prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens,
        "total_tokens": run.total_tokens, "cost": float(run.cost or 0), "tags": run.tags, "user_id": run.user_id,
        "user_email": run.user_email, "saved": run.saved, "thread_id": run.thread_id, "input": run.input,
        "output": run.output, "error": run.error, "metadata": run.metadata,
    }  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    """A run as SPEC §3 lists it. `app_id` is the app's public UUID (from the context: one app per list).

    The fields describe the schema; `run_dict` writes them.
    """

    app_id = serializers.SerializerMethodField()
    cost = serializers.DecimalField(**COST, coerce_to_string=False)
    input = serializers.JSONField()
    output = serializers.JSONField()
    error = serializers.JSONField()
    metadata = serializers.JSONField()
    tags = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Run
        fields = RUN_FIELDS

    def get_app_id(self, run) -> str:
        return str(self.context["app"].public_id)

    def to_representation(self, run) -> dict:
        return run_dict(run, str(self.context["app"].public_id))


class EventSerializer(serializers.ModelSerializer):
    payload = serializers.JSONField()

    class Meta:
        model = Event
        fields = ["name", "timestamp", "received_at", "payload"]


class TraceNodeSerializer(RunSerializer):
    """A run in a trace: its own tokens and cost, and the totals of its whole subtree."""

    subtree_tokens = serializers.IntegerField()
    subtree_cost = serializers.DecimalField(**COST, coerce_to_string=False)
    cost_row = serializers.SerializerMethodField()
    children = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RUN_FIELDS, "cost_row", "subtree_tokens", "subtree_cost", "children"]

    def get_cost_row(self, run) -> dict | None:
        row = self.context["cost_rows"].get(run.cost_row_id)
        if row is None:
            return None
        return {
            "model": row.model,
            "prompt_price": float(row.prompt_price),
            "completion_price": float(row.completion_price),
            "total_price": None if row.total_price is None else float(row.total_price),
            "valid_from": row.valid_from and row.valid_from.isoformat(),
        }

    def get_children(self, run) -> list[dict]:
        # The node shape, also when called from RunDetailSerializer (only the root has events).
        return [TraceNodeSerializer.to_representation(self, child) for child in run.children]

    def to_representation(self, run) -> dict:
        """The node and, recursively, its children: one dict per run, no serializer per node."""
        return {
            **run_dict(run, str(self.context["app"].public_id)),
            "cost_row": self.get_cost_row(run),
            "subtree_tokens": run.subtree_tokens,
            "subtree_cost": float(run.subtree_cost),
            "children": self.get_children(run),
        }


class FeedbackSerializer(serializers.ModelSerializer):
    class Meta:
        model = Feedback
        fields = ["rating", "comment", "score_name", "score_value", "message_id", "timestamp"]


class RunDetailSerializer(TraceNodeSerializer):
    events = EventSerializer(many=True)
    feedback = FeedbackSerializer(many=True)

    class Meta(TraceNodeSerializer.Meta):
        fields = [*TraceNodeSerializer.Meta.fields, "events", "feedback"]

    def to_representation(self, run) -> dict:
        return {
            **super().to_representation(run),
            "events": EventSerializer(run.events, many=True).data,
            "feedback": FeedbackSerializer(run.feedback, many=True).data,
        }


class CompareRequestSerializer(serializers.Serializer):
    run_id_a = serializers.CharField(max_length=128)
    run_id_b = serializers.CharField(max_length=128)
    app_id = serializers.UUIDField(required=False)
