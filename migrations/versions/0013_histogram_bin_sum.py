"""PostgreSQL: `metric_bin_sum`, the aggregate that sums the rollups' histogram bins.

On PostgreSQL and TimescaleDB (SQLite: nothing to do). A metric answer from the rollups sums 160
histogram bins per row; most of a row's bins are NULL (0). `sum(bigint)` accumulates a NUMERIC and
`sum(int4)` calls its transition for every NULL, after a cast of every bin; this aggregate adds
bigints with `int8pl`, strict, so a NULL bin costs no call at all (bench/RESULTS.md, "Histogram
bins summed by a strict aggregate": 16-27 % less CPU for the statements that sum bins). It
stores nothing: no table or continuous aggregate changes, and executing an aggregate needs no
grant (PUBLIC may, as for every function).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    from observatory_api.db.metric_sql import BIN_SUM_DDL

    op.execute(BIN_SUM_DDL)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    from observatory_api.db.metric_sql import BIN_SUM

    op.execute(f"DROP AGGREGATE {BIN_SUM}(bigint)")
