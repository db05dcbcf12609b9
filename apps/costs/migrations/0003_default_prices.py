"""Load the default cost table (apps/costs/default_prices.py) on a new installation."""

from django.db import migrations

from apps.costs.default_prices import load_default_prices


def load(apps, schema_editor):
    load_default_prices(apps.get_model("costs", "ModelCost"))


class Migration(migrations.Migration):
    dependencies = [("costs", "0002_patterns_and_cached_prices")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
