from rest_framework import serializers

from apps.tenancy.models import App


class AppSerializer(serializers.ModelSerializer):
    app_id = serializers.UUIDField(source="public_id", read_only=True)
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = App
        fields = ["app_id", "name", "slug", "organization", "retention_days", "created_at"]
