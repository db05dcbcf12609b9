"""Describes Bearer-key authentication in the OpenAPI schema (loaded by TenancyConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.BearerKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An Observatory API key: `Authorization: Bearer obs_...`.",
        }
