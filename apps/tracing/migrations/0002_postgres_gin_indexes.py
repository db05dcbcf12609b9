"""GIN indexes for the tags (`?|`) and search (trigram LIKE) filters: PostgreSQL only;
SQLite filters without them."""

from django.db import migrations

POSTGRES = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS run_tags_gin ON tracing_run USING gin (tags)",
    "CREATE INDEX IF NOT EXISTS run_search_trgm ON tracing_run USING gin (search_text gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS run_search_trgm", "DROP INDEX IF EXISTS run_tags_gin"]


def postgres_only(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("tracing", "0001_initial")]

    operations = [migrations.RunPython(postgres_only(POSTGRES), postgres_only(DROP))]
