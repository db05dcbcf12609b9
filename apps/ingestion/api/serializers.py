"""Schemas of /api/report for the OpenAPI document only: the view validates events itself, faster."""

from rest_framework import serializers


class ReportedEventSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="agent_start, llm_end, tool_error, llm_call, saved, chat, feedback, ...")
    type = serializers.CharField(required=False, help_text="agent, chain, tool, llm, retriever, embedding, ...")
    run_id = serializers.CharField(required=False, max_length=128)
    parent_run_id = serializers.CharField(required=False, allow_null=True, max_length=128)
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601; UTC when no zone is given.")
    app_id = serializers.UUIDField(required=False)
    id = serializers.CharField(required=False, help_text="Client event id used for de-duplication.")
    run_name = serializers.CharField(required=False)
    metadata = serializers.JSONField(required=False)
    input = serializers.JSONField(required=False)
    output = serializers.JSONField(required=False)
    model = serializers.CharField(required=False)
    prompt_tokens = serializers.IntegerField(required=False, min_value=0)
    completion_tokens = serializers.IntegerField(required=False, min_value=0)
    total_tokens = serializers.IntegerField(required=False, min_value=0)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    status = serializers.ChoiceField(choices=["success", "error"], required=False)
    error = serializers.JSONField(required=False)


class ReportSerializer(serializers.Serializer):
    events = ReportedEventSerializer(many=True)


class EventErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    error = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = EventErrorSerializer(many=True)
