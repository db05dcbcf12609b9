"""Worker mode queues a request's events as one row (QueuedBatch) instead of an event row and a
queue row per event; events queued the old way move into it, marked as stored already."""

import orjson
from django.db import migrations, models

CHUNK = 1000


def move_queued_events(apps, schema_editor):
    """Each run of old queue rows received together becomes one QueuedBatch(stored=True)."""
    pending = apps.get_model("tracing", "PendingEvent")
    queued = apps.get_model("tracing", "QueuedBatch")
    rows = (
        pending.objects.order_by("event_id")
        .values_list("event__app_id", "event__dedup_key", "event__payload", "event__run_id", "event__received_at")
        .iterator(chunk_size=CHUNK)
    )
    batch: list[tuple] = []

    def flush():
        if batch:
            queued.objects.create(
                received_at=batch[0][4],
                size=len(batch),
                run_keys="\n".join(dict.fromkeys(f"{app}:{run_id}" for app, _, _, run_id, _ in batch if run_id)),
                body=orjson.dumps([[app, key, payload] for app, key, payload, _, _ in batch]),
                stored=True,
            )
            batch.clear()

    for row in rows:
        if batch and (row[4] != batch[0][4] or len(batch) >= CHUNK):
            flush()
        batch.append(row)
    flush()


def store_bodies_cheaply(apps, schema_editor):
    """A queued body is read once, soon: PostgreSQL's default compression (pglz) cost the request
    more than the write itself. lz4 where the server has it (less WAL than none), else none."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        lz4 = cursor.fetchone()[0]
    change = "SET COMPRESSION lz4" if lz4 else "SET STORAGE EXTERNAL"
    schema_editor.execute(f"ALTER TABLE tracing_queuedbatch ALTER COLUMN body {change}")


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0016_runsearch_words"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuedBatch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("received_at", models.DateTimeField()),
                ("size", models.PositiveIntegerField(help_text="How many events the body holds.")),
                ("run_keys", models.TextField(blank=True, default="")),
                ("body", models.BinaryField()),
                ("stored", models.BooleanField(default=False)),
            ],
        ),
        migrations.RunPython(store_bodies_cheaply, migrations.RunPython.noop),
        migrations.RunPython(move_queued_events, migrations.RunPython.noop),
        migrations.DeleteModel(name="PendingEvent"),
    ]
