from django.core.management.base import BaseCommand, CommandError

from apps.tenancy.models import App
from apps.tenancy.services import AppLookupError, get_or_create_app
from apps.tracing.retention import PurgeResult, purge_expired

NAMES = [
    ("runs", "run"), ("events", "event"), ("costs", "cost row"), ("searches", "search row"),
    ("feedback", "feedback"), ("messages", "message"),
]  # fmt: skip


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 or noun == "feedback" else f"{count:,} {noun}s"


def describe(result: PurgeResult, *, dry_run: bool) -> str:
    """One line per app: what went (or would go), what was kept and why."""
    name = f"{result.app.organization.slug}/{result.app.slug}"
    if result.cutoff is None:
        return f"{name}: keeps forever"
    head = f"{name} (retention {result.app.retention_days} d, before {result.cutoff:%Y-%m-%d %H:%M:%S} UTC): "
    head += "would delete " if dry_run else "deleted "
    parts = [", ".join(plural(getattr(result, field), noun) for field, noun in NAMES)]
    verb = ("would be " if dry_run else "") + "deleted"
    parts.append(f"{plural(result.threads_deleted, 'thread')} {verb}, {result.threads_refreshed:,} refreshed")
    parts.append(f"{plural(result.protected, 'expired run')} kept in saved traces")
    if result.skipped:
        parts.append(f"{plural(result.skipped, 'run')} being written, left for the next purge")
    line = head + "; ".join(parts)
    if result.busy:
        line += "; another purge is working on this app, left to it"
    return line


class Command(BaseCommand):
    help = "Delete runs, events, feedback and messages older than each app's retention (saved traces are kept)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--app", default=None, help="only this app (slug)")
        parser.add_argument(
            "--org", default=None, help="only the apps of this organization (slug); with --app, its organization"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")

    def handle(self, *args, app, org, dry_run, **options) -> None:
        if app:
            try:
                targets = [get_or_create_app(app_slug=app, org_slug=org)]
            except AppLookupError as exc:
                raise CommandError(str(exc).replace("; pass --create to make it", "")) from None
        elif org:
            targets = list(App.objects.filter(organization__slug=org).order_by("pk"))
            if not targets:
                raise CommandError(f"no organization '{org}', or it has no apps")
        else:
            targets = [None]
        results = [result for target in targets for result in purge_expired(app=target, dry_run=dry_run)]
        for result in results:
            self.stdout.write(describe(result, dry_run=dry_run))
        total = sum(result.runs for result in results)
        self.stdout.write(
            f"{'Would delete' if dry_run else 'Deleted'} {plural(total, 'run')} in {plural(len(results), 'app')}."
        )
