import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.tenancy.models import Membership
from apps.tenancy.services import add_member, get_or_create_app, issue_api_key


class Command(BaseCommand):
    help = (
        "First-run setup for `make run`: a local admin, a `demo` app with an API key, and demo data. "
        "Does nothing when a superuser already exists, so re-running keeps everything."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the server will listen")

    def handle(self, *args, **options) -> None:
        url = options["url"]
        # The SDK reads these (flowxobservatory.config); the README's curl example uses them too.
        api_url = f"export FLOWX_OBSERVATORY_API_URL={url.rstrip('/')}"
        if get_user_model().objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"Existing installation found: keeping its data and accounts. Serving {url}\n"
                f"  {api_url}\n"
                "  The API key was shown on the first run; to make another one:\n"
                "  export FLOWX_OBSERVATORY_API_KEY=$(DEBUG=true .venv/bin/python manage.py create_api_key demo)"
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            app = get_or_create_app(app_slug="demo", create=True)
            user, _ = add_member(
                organization=app.organization, username="admin", role=Membership.Role.OWNER, password=password
            )
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
            _, raw_key = issue_api_key(app=app, name="local")
        call_command("load_demo", app=app.slug, org=app.organization.slug, stdout=self.stdout)
        bar = "=" * 72
        self.stdout.write(
            f"\n{bar}\n  Observatory is set up. These are shown ONCE; store them now.\n\n"
            f"  Log in at {url}  user: admin   password: {password}\n\n"
            f"  API key for app 'demo' ({app.public_id}); paste into your shell:\n\n"
            f"  export FLOWX_OBSERVATORY_API_KEY={raw_key}\n"
            f"  {api_url}\n{bar}\n"
        )
