import pytest

from apps.costs.models import ModelCost


@pytest.fixture(autouse=True)
def empty_cost_table(db):
    """Each cost test sets exactly the prices it asserts on, so it starts without the default table."""
    ModelCost.objects.all().delete()
