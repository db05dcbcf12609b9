from rest_framework import serializers

from apps.tracing.models import Event, Feedback, Run

RUN_FIELDS = [
    "run_id", "parent_run_id", "app_id", "type", "name", "agent", "status", "started_at", "ended_at", "latency_s",
    "model", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "tags", "user_id", "user_email",
    "saved", "thread_id", "input", "output", "error", "metadata",
]  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    """A run as SPEC §3 lists it. `app_id` is the app's public UUID (from the context: one app per list)."""

    app_id = serializers.SerializerMethodField()
    cost = serializers.DecimalField(max_digits=20, decimal_places=10, coerce_to_string=False)
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


class EventSerializer(serializers.ModelSerializer):
    payload = serializers.JSONField()

    class Meta:
        model = Event
        fields = ["name", "timestamp", "received_at", "payload"]


class TraceNodeSerializer(RunSerializer):
    """A run in a trace: its own tokens and cost, and the totals of its whole subtree."""

    subtree_tokens = serializers.IntegerField(source="tree.subtree_tokens")
    subtree_cost = serializers.DecimalField(
        source="tree.subtree_cost", max_digits=20, decimal_places=10, coerce_to_string=False
    )
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
            "prompt_price": row.prompt_price,
            "completion_price": row.completion_price,
            "total_price": row.total_price,
            "valid_from": row.valid_from,
        }

    def get_children(self, run) -> list[dict]:
        return TraceNodeSerializer(run.tree.children, many=True, context=self.context).data


class FeedbackSerializer(serializers.ModelSerializer):
    class Meta:
        model = Feedback
        fields = ["rating", "comment", "message_id", "timestamp"]


class RunDetailSerializer(TraceNodeSerializer):
    events = EventSerializer(source="tree.events", many=True)
    feedback = FeedbackSerializer(source="tree.feedback", many=True)

    class Meta(TraceNodeSerializer.Meta):
        fields = [*TraceNodeSerializer.Meta.fields, "events", "feedback"]


class CompareRequestSerializer(serializers.Serializer):
    run_id_a = serializers.CharField(max_length=128)
    run_id_b = serializers.CharField(max_length=128)
    app_id = serializers.UUIDField(required=False)
