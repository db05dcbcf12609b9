from django.core.management.base import BaseCommand, CommandError

from apps.ingestion.assembly import assemble_pending
from apps.ingestion.demo import DemoTraffic, ensure_demo_prices
from apps.ingestion.services import ingest_batch
from apps.tenancy.services import AppLookupError, get_or_create_app

BATCH_EVENTS = 500


class Command(BaseCommand):
    help = "Fill an app with realistic demo traces, threads and feedback, through the real ingestion pipeline."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--app", default="demo", help="app slug (created in the `default` organization if missing)")
        parser.add_argument("--org", default=None, help="organization slug of the app")
        parser.add_argument("--runs", type=int, default=400, help="about how many runs to make (default 400)")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, app: str, org: str | None, runs: int, seed: int, **options) -> None:
        if runs < 1:
            raise CommandError("--runs must be at least 1")
        try:
            target = get_or_create_app(app_slug=app, org_slug=org, create=True)
        except AppLookupError as exc:
            raise CommandError(str(exc)) from None
        ensure_demo_prices()
        batch: list[dict] = []
        accepted = 0
        for trace in DemoTraffic(seed=seed).traces(runs):
            batch += trace
            if len(batch) >= BATCH_EVENTS:
                accepted += self._send(target, batch)
                batch = []
        if batch:
            accepted += self._send(target, batch)
        assemble_pending()  # with OBSERVATORY_ASSEMBLY=worker: apply now, so the demo is complete on return
        self.stdout.write(f"Loaded {accepted} demo events into app '{target.slug}' ({target.public_id}).")

    def _send(self, app, events: list[dict]) -> int:
        result = ingest_batch(app=app, raw_events=events)
        if result.errors:
            raise CommandError(f"demo data was rejected: {result.as_json()['errors'][:3]}")
        return result.accepted
