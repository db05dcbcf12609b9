from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.models import App


class Command(BaseCommand):
    help = (
        "Turn on or off an app's legacy ingestion by app id: /api/report then accepts events without an API key "
        "when they name the app's id (the LLMonitor SDK). The app id is not a secret (docs/INTEROP.md)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("app_slug")
        parser.add_argument("state", choices=["on", "off"])
        parser.add_argument("--org", dest="org_slug", help="the organization's slug, when several have this app slug")

    def handle(self, *args, app_slug, state, org_slug, **options) -> None:
        apps = App.objects.filter(slug=app_slug).select_related("organization")
        if org_slug:
            apps = apps.filter(organization__slug=org_slug)
        found = list(apps[:2])
        if not found:
            raise CommandError(f"no app '{app_slug}'" + (f" in organization '{org_slug}'" if org_slug else ""))
        if len(found) > 1:
            raise CommandError(f"several organizations have an app '{app_slug}': say which with --org")
        app = found[0]
        app.legacy_ingestion = state == "on"
        app.save(update_fields=["legacy_ingestion"])
        if app.legacy_ingestion:
            self.stdout.write(
                f"Legacy ingestion on for '{app.organization.slug}/{app.slug}': /api/report accepts events "
                f"without a key that name app id {app.public_id}."
            )
        else:
            self.stdout.write(f"Legacy ingestion off for '{app.organization.slug}/{app.slug}'.")
