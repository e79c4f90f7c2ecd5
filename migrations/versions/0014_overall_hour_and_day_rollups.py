"""Overall rollups per hour and per day: `metric_rollup_hour_overall`, `metric_rollup_day_overall`.

As `metric_rollup_minute_overall` is per minute: one row per bucket, status and kind, with the
columns of every rollup (counts, sums, min, max per measure, the histograms). A metric query that
neither groups nor filters by another dimension reads them instead of the rollups of every
dimension: bench/metric_engine.py's 7 days of model calls are 484 hour rows instead of 8,722, and
the bin sums over those rows were most of such an answer (bench/RESULTS.md, "Histogram bins
summed by a strict aggregate" and "Overall hour and day rollups"). The writer adds to them with the
minute `_overall` rows it stages, re-bucketed, as it fills the hour and day rollups.

This revision backfills them from `metric_rollup_hour` and `metric_rollup_day` (grouped by bucket,
status and kind: counts, sums and bins add, min and max nest). On TimescaleDB, where 0005 made the
continuous aggregates, it creates `metric_cagg_hour_overall` and `metric_cagg_day_overall` over
`spans` as the others are (not over the minute aggregate: a late span would then wait for two
refreshes, and the segment cache's refresh checks read the invalidations of `spans`), with the
hour and day aggregates' refresh policies (no start offset, as 0010) and the retention of `spans`.
They are created `WITH NO DATA` (no refresh inside a transaction): real-time aggregation answers
from `spans` until their policies' first runs. A downgrade drops the aggregates and the tables.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

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
# New table -> the rollup of every dimension of its grain it is backfilled from.
TABLES = {"metric_rollup_hour_overall": "metric_rollup_hour", "metric_rollup_day_overall": "metric_rollup_day"}
# New aggregate -> (bucket width, (end_offset, schedule_interval)): those of the hour and day aggregates.
AGGREGATES = {
    "metric_cagg_hour_overall": ("1 hour", ("5 minutes", "10 minutes")),
    "metric_cagg_day_overall": ("1 day", ("1 hour", "1 hour")),
}
OVERALL = ("status", "kind")


def _columns() -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = [
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dims_key", sa.String(32), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
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


def dims_key(values: tuple[str | None, ...]) -> str:
    """The writer's upsert key of a combination of dimension values (metrics.rollups.dims_key)."""
    joined = "\x1e".join("\x00" if value is None else value for value in values)
    return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()


def backfill_select(target: sa.Table, source: sa.Table, pairs: list[tuple[str, str]]) -> sa.Select[Any]:
    """`source`'s rows summed per (bucket, status, kind), in `target`'s column order; `pairs`: the
    (status, kind) combinations stored, whose keys are computed here as the writer computes them."""
    key = sa.case(
        *(
            (sa.and_(source.c.status == status, source.c.kind == kind), dims_key((status, kind)))
            for status, kind in pairs
        )
    )
    columns: list[Any] = []
    for column in target.columns:
        name = column.name
        if name == "dims_key":
            columns.append(key.label(name))
        elif name in ("bucket", *OVERALL):
            columns.append(source.c[name])
        elif name.endswith("_min"):
            columns.append(sa.func.min(source.c[name]).label(name))
        elif name.endswith("_max"):
            columns.append(sa.func.max(source.c[name]).label(name))
        else:  # counts, sums and histogram bins add up (a bin NULL everywhere stays NULL: 0)
            columns.append(sa.cast(sa.func.sum(source.c[name]), column.type).label(name))
    return sa.select(*columns).group_by(source.c.bucket, source.c.status, source.c.kind)


def upgrade() -> None:
    for name in TABLES:
        op.create_table(name, *_columns(), sa.PrimaryKeyConstraint("bucket", "dims_key", name=f"pk_{name}"))
    if not context.is_offline_mode():
        _backfill()
    if op.get_context().dialect.name == "postgresql":
        _create_aggregates()


def _backfill() -> None:
    bind = op.get_bind()
    metadata = sa.MetaData()
    for name, source_name in TABLES.items():
        target = sa.Table(name, metadata, *_columns())
        source = sa.Table(source_name, metadata, autoload_with=bind)
        pairs = [(row[0], row[1]) for row in bind.execute(sa.select(source.c.status, source.c.kind).distinct())]
        if pairs:
            bind.execute(sa.insert(target).from_select(list(target.c.keys()), backfill_select(target, source, pairs)))


def aggregates_definition() -> Any:
    """0005's SQL builders with every aggregate as it is after this revision (tests read it too):
    0008's, plus this revision's two."""
    path = Path(__file__).with_name("0008_canonical_models.py")
    spec = importlib.util.spec_from_file_location("_revision_0008", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    definition = module.aggregates_definition()
    for name, (width, policy) in AGGREGATES.items():
        definition.AGGREGATES[name] = (width, OVERALL)
        definition.POLICIES[name] = policy
    return definition


def _retention_days() -> int:
    config = op.get_context().config
    settings = config.attributes.get("database_settings") if config else None
    return int(getattr(settings, "retention_days", 90))


# Where 0005 created its aggregates (0008 and 0010 test the same).
_AGGREGATES_MADE = (
    "EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates"
    " WHERE view_schema = current_schema() AND view_name = 'metric_cagg_minute_overall')"
)


def _create_aggregates() -> None:
    from observatory_api.db.timescaledb_ddl import when_timescaledb

    definition = aggregates_definition()
    statements = []
    for name, (_, (end_offset, schedule)) in AGGREGATES.items():
        statements.append(
            f"CREATE MATERIALIZED VIEW {name}\n{definition.CONTINUOUS_OPTIONS} AS\n"
            f"{definition.aggregate_select(name)}\nWITH NO DATA;\n"
            f"PERFORM add_continuous_aggregate_policy('{name}', start_offset => NULL, "
            f"end_offset => INTERVAL '{end_offset}', schedule_interval => INTERVAL '{schedule}');\n"
            f"PERFORM add_retention_policy('{name}', INTERVAL '{_retention_days()} days');"
        )
    op.execute(when_timescaledb("\n".join(statements), only_if=_AGGREGATES_MADE))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        from observatory_api.db.timescaledb_ddl import retried_while_jobs_race, when_timescaledb

        drops = "\n".join(f"DROP MATERIALIZED VIEW IF EXISTS {name};" for name in reversed(AGGREGATES))
        op.execute(when_timescaledb(retried_while_jobs_race(drops), only_if=_AGGREGATES_MADE))
    for name in reversed(TABLES):
        op.drop_table(name)
