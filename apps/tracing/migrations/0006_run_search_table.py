"""Move the runs' search text into RunSearch (see its docstring for why), with its trigram index."""

import django.db.models.deletion
from django.db import migrations, models


def copy_text(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO tracing_runsearch (run_pk, app_id, text) SELECT id, app_id, search_text FROM tracing_run"
    )


def copy_back(apps, schema_editor):
    schema_editor.execute(
        "UPDATE tracing_run SET search_text = COALESCE("
        "(SELECT s.text FROM tracing_runsearch s WHERE s.run_pk = tracing_run.id), '')"
    )


def postgres_only(*statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0001_initial"),
        ("tracing", "0005_run_cost_table"),
    ]

    operations = [
        migrations.CreateModel(
            name="RunSearch",
            fields=[
                ("run", models.OneToOneField(db_column="run_pk", on_delete=django.db.models.deletion.CASCADE,
                                             primary_key=True, related_name="search", serialize=False,
                                             to="tracing.run")),
                ("app", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                          related_name="+", to="tenancy.app")),
                ("text", models.TextField()),
            ],
        ),
        migrations.RunPython(copy_text, copy_back),
        migrations.RunPython(
            postgres_only(
                "CREATE INDEX IF NOT EXISTS runsearch_trgm ON tracing_runsearch USING gin (text gin_trgm_ops)",
                "DROP INDEX IF EXISTS run_search_trgm",
            ),
            postgres_only(
                "CREATE INDEX IF NOT EXISTS run_search_trgm ON tracing_run USING gin (search_text gin_trgm_ops)",
                "DROP INDEX IF EXISTS runsearch_trgm",
            ),
        ),
        migrations.RemoveField(model_name="run", name="search_text"),
        migrations.AddField(
            model_name="run",
            name="search_digest",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
    ]  # fmt: skip
