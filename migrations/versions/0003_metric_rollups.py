"""Metric rollups: spans pre-aggregated per minute, hour and day, for long-range metric queries.

The minute, hour and day tables have one row per bucket and combination of provider, model,
service, environment, status, kind and finish reason (`dims_key` hashes them);
`metric_rollup_minute_overall` one per minute, status and kind. Each row has counts, sums, min and max per measure
and log-spaced histograms (160 bins, NULL for 0) of latency and time to first token. The writer
adds new spans to them in the transaction that stores the spans; this revision backfills them from
spans already stored. On TimescaleDB, continuous aggregates with the same rows replace them
(0005; see the README, "Metrics").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# Fixed here, not imported: a revision must keep creating the same schema when the code moves on.
HISTOGRAM_BINS = 160
MEASURES = {
    "duration_ms": False,
    "time_to_first_token_ms": False,
    "input_tokens": True,
    "output_tokens": True,
    "total_tokens": True,
    "cache_read_input_tokens": True,
    "cache_creation_input_tokens": True,
    "reasoning_output_tokens": True,
    "cost_usd": False,
    "output_tokens_per_second": False,
}
HISTOGRAM_PREFIXES = ("duration", "ttft")
# The overall minute rollup keeps only status and kind; the others every dimension.
OVERALL = "metric_rollup_minute_overall"
TABLES = ("metric_rollup_minute", OVERALL, "metric_rollup_hour", "metric_rollup_day")
BACKFILL_BATCH = 20_000


def _columns(*, all_dimensions: bool = True) -> list[sa.Column]:
    dimensions = [
        sa.Column("provider", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("service_name", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(100)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("finish_reason", sa.String(64)),
    ]
    if not all_dimensions:
        dimensions = [column for column in dimensions if column.name in ("status", "kind")]
    columns = [
        sa.Column("bucket", TS, nullable=False),
        sa.Column("dims_key", sa.String(32), nullable=False),
        *dimensions,
        sa.Column("span_count", sa.BigInteger, nullable=False),
    ]
    for measure, integer in MEASURES.items():
        value_type = sa.BigInteger if integer else sa.Double
        columns += [
            sa.Column(f"{measure}_count", sa.BigInteger, nullable=False),
            sa.Column(f"{measure}_sum", value_type, nullable=False),
            sa.Column(f"{measure}_min", value_type),
            sa.Column(f"{measure}_max", value_type),
        ]
    for prefix in HISTOGRAM_PREFIXES:
        columns += [sa.Column(f"{prefix}_h{i:03d}", sa.BigInteger) for i in range(HISTOGRAM_BINS)]
    return columns


def upgrade() -> None:
    for name in TABLES:
        columns = _columns(all_dimensions=name != OVERALL)
        op.create_table(name, *columns, sa.PrimaryKeyConstraint("bucket", "dims_key", name=f"pk_{name}"))
    if not context.is_offline_mode():
        _backfill()


def _backfill() -> None:
    """Add the spans already stored, in batches, with the writer's own aggregation code."""
    from observatory_api.db.tables import spans

    bind = op.get_bind()
    # No cursor when there is nothing to add: asyncpg keeps a server-side cursor (portal) open
    # until the transaction ends, and PostgreSQL then refuses a later revision's ALTER TABLE spans.
    if bind.execute(sa.select(spans.c.trace_id).limit(1)).first() is None:
        return
    # The aggregation code is today's: once a later revision changed the rollups' columns (0008:
    # `model_id` and `cost_source` for `model`; 0014: two more tables), it cannot fill this
    # revision's tables. Those revisions rebuild or backfill the rollups themselves, so nothing is
    # lost on the way to head.
    from observatory_api.metrics.rollup_tables import ROLLUPS as CURRENT

    inspector = sa.inspect(bind)
    for rollup in CURRENT:
        if rollup.table.name not in TABLES:  # a later revision's table (0014): not there yet
            return
        present = {column["name"] for column in inspector.get_columns(rollup.table.name)}
        if present != {column.name for column in rollup.table.columns}:
            return
    fields = ("kind", "status", "start_time", "duration_ms", "provider", "model", "service_name", "environment")
    fields += ("finish_reason", *(m for m in MEASURES if m not in ("duration_ms", "output_tokens_per_second")))
    # Options on the statement, not the connection: they would stick to Alembic's connection.
    query = sa.select(*(spans.c[f] for f in fields)).execution_options(yield_per=BACKFILL_BATCH)
    # Closed when done: an open server-side cursor on `spans` blocks later revisions' ALTER TABLE.
    with bind.execute(query) as stream:
        _add_partitions(bind, stream)


def _add_partitions(bind: Any, stream: Any) -> None:
    from observatory_api.core.records import SpanRecord
    from observatory_api.db.write_sql import dialect_insert as sa_insert
    from observatory_api.metrics.rollup_tables import ROLLUPS
    from observatory_api.metrics.rollups import additive_updates, rollup_rows

    for partition in stream.partitions():
        records = [
            SpanRecord(trace_id="", span_id="", name="", end_time=row.start_time, **row._asdict()) for row in partition
        ]
        for rollup in ROLLUPS:
            table = rollup.table
            names = [column.name for column in table.columns]
            rows = [dict(zip(names, row, strict=True)) for row in rollup_rows(records, rollup)]
            # ~370 parameters a row: stay under asyncpg's 32767 per statement.
            for start in range(0, len(rows), 50):
                insert = sa_insert(bind.dialect.name, table).values(rows[start : start + 50])
                bind.execute(
                    insert.on_conflict_do_update(
                        index_elements=["bucket", "dims_key"], set_=additive_updates(table, insert.excluded)
                    )
                )


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
