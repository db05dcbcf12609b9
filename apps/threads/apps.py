from django.apps import AppConfig


class ThreadsConfig(AppConfig):
    name = "apps.threads"
    label = "threads"

    def ready(self) -> None:
        from apps.threads.receivers import purge_messages, refresh_after_purge, refresh_after_repricing
        from apps.tracing.signals import retention_due, runs_purged, runs_repriced

        runs_repriced.connect(refresh_after_repricing, dispatch_uid="threads.refresh_after_repricing")
        retention_due.connect(purge_messages, dispatch_uid="threads.purge_messages")
        runs_purged.connect(refresh_after_purge, dispatch_uid="threads.refresh_after_purge")
