"""Move each run's cost into the narrow RunCost table (see RunCost's docstring for why)."""

import django.db.models.deletion
from django.db import migrations, models


def copy_costs(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO tracing_runcost (run_pk, app_id, model, started_at, prompt_tokens, completion_tokens, "
        "cached_prompt_tokens, total_tokens, cache_hit, cost, cost_row_id) "
        "SELECT id, app_id, CASE WHEN type = 'llm' THEN model END, started_at, prompt_tokens, completion_tokens, "
        "cached_prompt_tokens, total_tokens, FALSE, cost, cost_row_id FROM tracing_run"
    )


def copy_back(apps, schema_editor):
    schema_editor.execute(
        "UPDATE tracing_run SET cost = (SELECT c.cost FROM tracing_runcost c WHERE c.run_pk = tracing_run.id), "
        "cost_row_id = (SELECT c.cost_row_id FROM tracing_runcost c WHERE c.run_pk = tracing_run.id)"
    )


def big(name):
    return (name, models.BigIntegerField(blank=True, null=True))


class Migration(migrations.Migration):
    dependencies = [
        ("costs", "0004_recalculation"),
        ("tenancy", "0001_initial"),
        ("tracing", "0004_run_cached_prompt_tokens"),
    ]

    operations = [
        migrations.CreateModel(
            name="RunCost",
            fields=[
                ("run", models.OneToOneField(db_column="run_pk", on_delete=django.db.models.deletion.CASCADE,
                                             primary_key=True, related_name="pricing", serialize=False,
                                             to="tracing.run")),
                ("app", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                          related_name="+", to="tenancy.app")),
                ("model", models.CharField(blank=True, help_text="Set for llm runs only.", max_length=200,
                                           null=True)),
                ("started_at", models.DateTimeField()),
                big("prompt_tokens"), big("completion_tokens"), big("cached_prompt_tokens"), big("total_tokens"),
                ("cache_hit", models.BooleanField(default=False)),
                ("cost", models.DecimalField(decimal_places=10, default=0, max_digits=20)),
                ("cost_row", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                               related_name="+", to="costs.modelcost")),
            ],
            options={"indexes": [models.Index(fields=["app", "-cost", "-run"], name="runcost_app_cost")]},
        ),
        migrations.RunPython(copy_costs, copy_back),
        migrations.RemoveIndex(model_name="run", name="run_app_cost"),
        migrations.RemoveField(model_name="run", name="cost"),
        migrations.RemoveField(model_name="run", name="cost_row"),
    ]  # fmt: skip
