import re
from argparse import ArgumentTypeError
from datetime import date
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.costs.models import ModelCost


def price(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ArgumentTypeError(f"{value!r} is not a price (USD per 1,000 tokens, e.g. 0.0025)") from None
    if not number.is_finite() or number < 0:
        raise ArgumentTypeError(f"{value!r}: a price must be a finite number of at least 0")
    return number


def day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Create or update the cost row of a model (USD per 1,000 tokens), in force from --valid-from."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model")
        parser.add_argument("--prompt", required=True, type=price, help="USD per 1,000 prompt tokens")
        parser.add_argument("--completion", required=True, type=price, help="USD per 1,000 completion tokens")
        parser.add_argument("--total", type=price, help="blended USD per 1,000 tokens, for total-only events")
        parser.add_argument("--cached", type=price, help="USD per 1,000 cached prompt tokens")
        parser.add_argument("--valid-from", type=day, help="first day the price applies (default: always)")
        parser.add_argument("--pattern", action="store_true", help="MODEL is a regular expression")
        parser.add_argument("--provider", default=None)

    def handle(self, *args, model, prompt, completion, total, cached, valid_from, pattern, provider, **options):
        if pattern:
            try:
                re.compile(model)
            except re.error as exc:
                raise CommandError(f"{model!r} is not a valid regular expression: {exc}") from None
        row = ModelCost.objects.filter(model=model, valid_from=valid_from).first() or ModelCost(
            model=model, valid_from=valid_from
        )
        created = row.pk is None
        row.prompt_price, row.completion_price, row.total_price, row.cached_prompt_price = (
            prompt,
            completion,
            total,
            cached,
        )
        row.is_pattern = pattern
        if provider is not None:
            row.provider = provider
        try:
            row.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        row.save()
        since = f"from {valid_from}" if valid_from else "always"
        self.stdout.write(
            f"{'Created' if created else 'Updated'} {row}: prompt {prompt}, completion {completion}"
            f"{f', total {total}' if total is not None else ''}{f', cached {cached}' if cached is not None else ''}"
            f" USD / 1K tokens ({since}). Stored runs keep their cost until you run: "
            f"python manage.py recalc_costs --model {model}{' --pattern' if pattern else ''}"
        )
