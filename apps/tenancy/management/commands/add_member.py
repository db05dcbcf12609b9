from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.models import Membership, Organization
from apps.tenancy.services import add_member


class Command(BaseCommand):
    help = "Create a user when missing and make them a member of an organization."

    def add_arguments(self, parser) -> None:
        parser.add_argument("org_slug")
        parser.add_argument("username")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.MEMBER)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="set for a new user; without it the user cannot log in until reset")

    def handle(self, *args, org_slug, username, role, email, password, **options) -> None:
        organization = Organization.objects.filter(slug=org_slug).first()
        if organization is None:
            raise CommandError(f"no organization '{org_slug}'")
        user, created = add_member(
            organization=organization, username=username, role=role, email=email, password=password
        )
        verb = "Created" if created else "Found"
        self.stdout.write(f"{verb} user '{user.username}'; {role} of '{organization.slug}'.")
