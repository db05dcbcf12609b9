from argparse import ArgumentTypeError
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.tenancy.services import AppLookupError, get_or_create_app
from apps.tracing.repricing import recalculate_costs


def moment(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not an ISO 8601 date or time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


class Command(BaseCommand):
    help = "Reprice stored LLM runs from the current cost table, in the foreground, with a progress bar."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", default="", help="only runs of this model (or pattern, with --pattern)")
        parser.add_argument("--pattern", action="store_true", help="--model is a regular expression")
        parser.add_argument("--app", default=None, help="only runs of this app (slug)")
        parser.add_argument("--org", default=None, help="organization of --app, when the slug is ambiguous")
        parser.add_argument("--since", type=moment, default=None, help="only runs started at or after (ISO 8601)")
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    def handle(self, *args, model, pattern, app, org, since, dry_run, **options) -> None:
        target = None
        if app:
            try:
                target = get_or_create_app(app_slug=app, org_slug=org)
            except AppLookupError as exc:
                raise CommandError(str(exc)) from None
        with tqdm(unit="run", file=self.stderr._out, disable=None) as bar:

            def progress(summary, next_run) -> None:
                bar.total = summary.total
                bar.update(summary.examined - bar.n)

            summary = recalculate_costs(
                model=model, is_pattern=pattern, app=target, since=since, dry_run=dry_run, progress=progress
            )
        verb = "would change" if dry_run else "changed"
        self.stdout.write(
            f"{summary.examined} llm runs examined, {summary.changed} {verb}. "
            f"Total cost: ${summary.cost_before:.6f} before, ${summary.cost_after:.6f} after."
        )
