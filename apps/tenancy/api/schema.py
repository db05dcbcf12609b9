"""What every API endpoint shares in the OpenAPI schema: the Bearer-key scheme (loaded by
TenancyConfig.ready), the `app_id` parameter and the one error shape."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.BearerKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An Observatory API key: `Authorization: Bearer obs_...`.",
        }


class BasicKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.BasicKeyAuthentication"
    name = "basicKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "Any user name, the API key as the password."}


class ErrorSerializer(serializers.Serializer):
    """`{"error": "field: message"}`, as apps.tenancy.api.exceptions writes every API error."""

    error = serializers.CharField()


class RpcStatusSerializer(serializers.Serializer):
    """A google.rpc.Status, the error body of OTLP/HTTP (`/v1/traces`): in the request's encoding."""

    code = serializers.IntegerField(help_text="The gRPC status code (3: invalid argument, 16: unauthenticated, …).")
    message = serializers.CharField()


APP_ID = OpenApiParameter("app_id", OpenApiTypes.UUID, description="Default: the key's app / your current app.")

# The errors of every app-scoped read: a bad parameter, no credentials, an unknown app or object.
READ_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, "A parameter is invalid; the message names it."),
    401: OpenApiResponse(ErrorSerializer, "No valid API key or session."),
    404: OpenApiResponse(ErrorSerializer, "No such app (or object) for this caller."),
}
