from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.services import AppLookupError, get_or_create_app, issue_api_key


class Command(BaseCommand):
    help = "Create an API key for an app and print it (alone, as the last line of stdout). It is shown only once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("app_slug")
        parser.add_argument("--org", dest="org_slug", help="organization slug (default: the app's only organization)")
        parser.add_argument("--create", action="store_true", help="create the organization and app when missing")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, app_slug: str, org_slug: str | None, create: bool, name: str, **options) -> None:
        try:
            app = get_or_create_app(app_slug=app_slug, org_slug=org_slug, create=create)
        except AppLookupError as exc:
            raise CommandError(str(exc)) from None
        key, raw_key = issue_api_key(app=app, name=name)
        self.stderr.write(
            f"Created key {key.prefix}… for app '{app.slug}' ({app.public_id}) "
            f"in organization '{app.organization.slug}'. Store it now: it is not shown again."
        )
        self.stdout.write(raw_key)
