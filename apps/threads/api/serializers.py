from rest_framework import serializers

from apps.costs.models import COST
from apps.threads.models import Thread
from apps.tracing.api.serializers import FeedbackSerializer

THREAD_FIELDS = [
    "id", "thread_id", "app_id", "agent", "user_id", "user_email", "started_at", "ended_at", "message_count",
    "total_tokens", "total_cost", "preview", "has_feedback",
]  # fmt: skip


class ThreadSerializer(serializers.ModelSerializer):
    app_id = serializers.SerializerMethodField()
    total_cost = serializers.DecimalField(**COST, coerce_to_string=False)

    class Meta:
        model = Thread
        fields = THREAD_FIELDS

    def get_app_id(self, thread) -> str:
        return str(self.context["app"].public_id)


class MessageSerializer(serializers.Serializer):
    message_id = serializers.CharField(allow_null=True)
    role = serializers.CharField()
    content = serializers.JSONField()
    timestamp = serializers.DateTimeField()
    run_id = serializers.CharField(allow_null=True)
    latency_s = serializers.FloatField(allow_null=True)
    tokens = serializers.IntegerField(allow_null=True)
    cost = serializers.DecimalField(**COST, coerce_to_string=False, allow_null=True)
    feedback = FeedbackSerializer(many=True)


class ThreadDetailSerializer(ThreadSerializer):
    messages = MessageSerializer(many=True, source="conversation")

    class Meta(ThreadSerializer.Meta):
        fields = [*THREAD_FIELDS, "messages"]
