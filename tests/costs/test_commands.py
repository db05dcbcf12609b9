import subprocess
import sys
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.costs.models import ModelCost
from apps.tracing.models import Run
from tests.helpers import ingest


def command(name: str, *args) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_set_model_cost_creates_then_updates(db):
    assert "Created m" in command("set_model_cost", "m", "--prompt", "0.001", "--completion", "0.002")
    out = command("set_model_cost", "m", "--prompt", "0.003", "--completion", "0.004", "--total", "0.0035",
                  "--cached", "0.0005")  # fmt: skip
    assert out.startswith("Updated m") and "recalc_costs --model m" in out
    row = ModelCost.objects.get()
    assert (row.prompt_price, row.completion_price, row.total_price, row.cached_prompt_price) == (
        Decimal("0.003"), Decimal("0.004"), Decimal("0.0035"), Decimal("0.0005")
    )  # fmt: skip


def test_set_model_cost_with_a_start_day_adds_a_row(db):
    command("set_model_cost", "m", "--prompt", "1", "--completion", "1")
    command("set_model_cost", "m", "--prompt", "2", "--completion", "2", "--valid-from", "2026-06-01")
    days = ModelCost.objects.order_by("prompt_price").values_list("valid_from", flat=True)
    assert list(days) == [None, date(2026, 6, 1)]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prompt", "-1", "--completion", "1"], "a price must be a finite number of at least 0"),
        (["--prompt", "abc", "--completion", "1"], "is not a price"),
        (["--prompt", "NaN", "--completion", "1"], "a price must be a finite number"),
        (["--prompt", "1", "--completion", "1", "--valid-from", "2026-02-30"], "is not a date"),
        (["--prompt", "1"], "--completion"),
        (["--prompt", "1", "--completion", "1", "--pattern"], None),
    ],
)
def test_set_model_cost_refuses_bad_values(db, args, message):
    model = "m(" if "--pattern" in args else "m"
    with pytest.raises(CommandError, match=message or "not a valid regular expression"):
        command("set_model_cost", model, *args)
    assert not ModelCost.objects.exists()


def test_bad_values_exit_non_zero_from_the_shell(db, tmp_path):
    env = {"SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "set_model_cost", "m", "--prompt", "-1", "--completion", "1"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and "at least 0" in result.stderr


def test_recalc_costs_reprices_and_reports(acme_app):
    ModelCost.objects.create(model="m", prompt_price=1, completion_price=1)
    ingest(acme_app, {"name": "llm_call", "run_id": "r", "model": "m", "prompt_tokens": 1000, "completion_tokens": 0})
    ModelCost.objects.update(prompt_price=2)
    assert "1 would change" in command("recalc_costs", "--dry-run")
    assert Run.objects.with_cost().get().cost == 1
    out = command("recalc_costs", "--model", "m", "--app", "support-bot", "--since", "2000-01-01")
    assert "1 llm runs examined, 1 changed" in out and "$1.000000 before, $2.000000 after" in out
    assert Run.objects.with_cost().get().cost == 2


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--app", "ghost"]])
def test_recalc_costs_refuses_bad_values(db, args):
    with pytest.raises(CommandError):
        command("recalc_costs", *args)
