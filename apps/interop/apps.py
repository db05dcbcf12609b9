from django.apps import AppConfig


class InteropConfig(AppConfig):
    name = "apps.interop"
    label = "interop"
    verbose_name = "Other clients (OpenTelemetry, Langfuse, Lunary, LLMonitor)"
