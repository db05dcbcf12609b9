"""The merge's RunState mirrors the Run table: a column added to one must be added to the other."""

from apps.tracing.merge import STATE_FIELDS
from apps.tracing.models import Run


def test_the_run_state_has_every_column_of_a_run():
    columns = {f.attname for f in Run._meta.concrete_fields}
    assert columns <= STATE_FIELDS
    assert STATE_FIELDS - columns == {"search", "cost", "cost_row_id"}
