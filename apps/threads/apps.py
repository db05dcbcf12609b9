from django.apps import AppConfig


class ThreadsConfig(AppConfig):
    name = "apps.threads"
    label = "threads"

    def ready(self) -> None:
        from apps.threads.receivers import refresh_after_repricing
        from apps.tracing.signals import runs_repriced

        runs_repriced.connect(refresh_after_repricing, dispatch_uid="threads.refresh_after_repricing")
