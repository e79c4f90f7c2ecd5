"""Metric continuous aggregates: on TimescaleDB, the rollups are maintained by the database.

On PostgreSQL with the `timescaledb` extension and `spans` a hypertable (see 0001), this revision
creates `metric_cagg_minute`, `metric_cagg_minute_overall`, `metric_cagg_hour` and
`metric_cagg_day`: continuous aggregates over `spans` with the rows of the rollup tables of 0003
(same bucket, dimension, measure and histogram columns, with the same meaning; no `dims_key`, which
the query engine never reads). They use real-time aggregation (`materialized_only = false`): a
query reads the materialized buckets and aggregates the spans newer than the last refresh on the
fly, so a span counts as soon as it is committed. The API reads them, and the writer stops adding
to the rollup tables, when the database reports them at start-up (`metrics.continuous_aggregates`).
On plain PostgreSQL and SQLite this revision does nothing: the writer keeps the rollup tables.

The aggregates are created `WITH NO DATA`: materializing inside the migration's transaction is not
possible (TimescaleDB refuses `WITH DATA` and `refresh_continuous_aggregate` in a transaction
block). The first run of each refresh policy materializes the spans already stored (its window
reaches back as far as the retention keeps spans); until then real-time aggregation answers from
`spans` directly: correct, only slower.

A downgrade drops the aggregates (and their policies). The rollup tables then lack the spans
written while the aggregates were in use: rebuild them with a downgrade to 0002 and an upgrade
(0003 backfills them from `spans`).

Tested on plain PostgreSQL by emulation (tests/integration/metrics/test_continuous_aggregates.py), with a SQL
`time_bucket` (date_bin from 2000-01-03): `aggregate_select` as plain views is compared row by row
with the rollup tables the writer keeps, and `timescaledb_statements` runs with only
`CONTINUOUS_OPTIONS` left out (plain materialized views; a stand-in `add_continuous_aggregate_policy`
records its arguments). Untested, because TimescaleDB cannot be installed on the development
machine: TimescaleDB accepting the `WITH (timescaledb.continuous, ...)` statements and the policy
calls, the hypertable check, and its refresh and real-time aggregation themselves.
Written for TimescaleDB 2.7 or newer (finalized continuous aggregates); the options are set
explicitly because 2.13 changed the default of `materialized_only` to true.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import math

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Fixed here, not imported: a revision must keep creating the same schema when the code moves on.
# The same values as metrics.histogram and metrics.rollup_tables when this revision was written.
HISTOGRAM_ALPHA = 0.05
HISTOGRAM_BINS = 160
HISTOGRAM_PREFIXES = {"duration_ms": "duration", "time_to_first_token_ms": "ttft"}
# Measure -> whether its values are integers (token counts), in the rollup tables' column order.
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
ALL_DIMENSIONS = ("provider", "model", "service_name", "environment", "status", "kind", "finish_reason")
# Aggregate -> (bucket width, dimension columns), the twin of each rollup table of 0003.
AGGREGATES = {
    "metric_cagg_minute": ("1 minute", ALL_DIMENSIONS),
    "metric_cagg_minute_overall": ("1 minute", ("status", "kind")),
    "metric_cagg_hour": ("1 hour", ALL_DIMENSIONS),
    "metric_cagg_day": ("1 day", ALL_DIMENSIONS),
}
# Refresh policy per aggregate: (end_offset, schedule_interval); the start offset comes from the
# retention (see `_policy_start_days`). Buckets newer than the end offset are aggregated on the fly
# at query time (real-time aggregation); a few minutes of spans are cheap to aggregate and absorb
# spans exported after they end (a span is bucketed by its start). A span that reaches a bucket
# already materialized invalidates it, and the next run re-materializes it: a late span is missing
# from the aggregates for at most one schedule interval. Coarser grains are read only for whole
# buckets of a query's range, so they can be refreshed less often.
POLICIES = {
    "metric_cagg_minute": ("5 minutes", "1 minute"),
    "metric_cagg_minute_overall": ("5 minutes", "1 minute"),
    "metric_cagg_hour": ("5 minutes", "10 minutes"),
    "metric_cagg_day": ("1 hour", "1 hour"),
}
_GAMMA = (1 + HISTOGRAM_ALPHA) / (1 - HISTOGRAM_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
# The twin of metrics.rollups.tokens_per_second: the speed of a successful LLM call.
TOKENS_PER_SECOND = (
    "CASE WHEN kind = 'llm' AND status <> 'error' AND output_tokens > 0 AND duration_ms > 0 "
    "THEN CAST(output_tokens AS DOUBLE PRECISION) * CAST(1000 AS DOUBLE PRECISION) / duration_ms END"
)


def bin_of(value: float) -> int:
    """The histogram bin of `value`, as metrics.histogram.bin_of computes it."""
    if not value >= 1.0:
        return 0
    return min(1 + math.floor(math.log(value) / _LOG_GAMMA), HISTOGRAM_BINS - 1)


def bin_lower_bounds() -> list[float]:
    """For each bin i >= 1, the least double that `bin_of` puts in bin i or above.

    The aggregates count bins with two comparisons against these bounds instead of computing a
    logarithm per value and bin (320 times a span): the same bins as the writer's Python, exactly,
    whatever the database server's `ln`.
    """
    bounds = [0.0]  # bin 0 has no lower bound
    for index in range(1, HISTOGRAM_BINS):
        value = _GAMMA ** (index - 1)
        while bin_of(value) >= index:
            value = math.nextafter(value, 0.0)
        while bin_of(value) < index:
            value = math.nextafter(value, math.inf)
        bounds.append(value)
    return bounds


def _double(value: float) -> str:
    # repr() gives the shortest text that reads back as the same double.
    return f"CAST('{value!r}' AS DOUBLE PRECISION)"


def _histogram_columns(column: str, prefix: str) -> list[str]:
    """One count per bin, NULL when the bin is empty (as the writer stores it)."""
    bounds = [_double(bound) for bound in bin_lower_bounds()]
    columns = []
    for index in range(HISTOGRAM_BINS):
        if index == 0:
            condition = f"{column} < {bounds[1]}"
        elif index == HISTOGRAM_BINS - 1:
            condition = f"{column} >= {bounds[index]}"
        else:
            condition = f"{column} >= {bounds[index]} AND {column} < {bounds[index + 1]}"
        columns.append(f"sum(CASE WHEN {condition} THEN 1 END) AS {prefix}_h{index:03d}")
    return columns


def aggregate_select(name: str) -> str:
    """The SELECT of aggregate `name`: per bucket and dimension values, what the writer adds up in
    the rollup table it mirrors (metrics.rollups): the span count; per measure the count of
    non-null values, their sum (0 when none), min and max; the histogram bins."""
    width, dimensions = AGGREGATES[name]
    bucket = f"time_bucket(INTERVAL '{width}', start_time)"
    columns = [f"{bucket} AS bucket", *dimensions, "count(*) AS span_count"]
    for measure, integer in MEASURES.items():
        value = f"({TOKENS_PER_SECOND})" if measure == "output_tokens_per_second" else measure
        zero = "0" if integer else "CAST(0 AS DOUBLE PRECISION)"
        columns += [
            f"count({value}) AS {measure}_count",
            f"coalesce(sum({value}), {zero}) AS {measure}_sum",
            f"min({value}) AS {measure}_min",
            f"max({value}) AS {measure}_max",
        ]
    for measure, prefix in HISTOGRAM_PREFIXES.items():
        columns += _histogram_columns(measure, prefix)
    separator = ",\n  "
    return f"SELECT\n  {separator.join(columns)}\nFROM spans\nGROUP BY {', '.join([bucket, *dimensions])}"


def _policy_start_days() -> int:
    """How far back each refresh reaches: inside the retention of `spans`, never over dropped
    chunks (a refresh over them would delete their buckets from the aggregate); a refresh only
    re-materializes the buckets changed since the last one, so a long window costs little."""
    context = op.get_context()
    settings = context.config.attributes.get("database_settings") if context.config else None
    return max(int(getattr(settings, "retention_days", 90)) - 1, 1)


CONTINUOUS_OPTIONS = "WITH (timescaledb.continuous, timescaledb.materialized_only = false)"


def timescaledb_statements(start_days: int) -> str:
    """The PL/pgSQL statements the upgrade runs when TimescaleDB is installed."""
    statements = []
    for name in AGGREGATES:
        end_offset, schedule = POLICIES[name]
        statements.append(
            f"CREATE MATERIALIZED VIEW {name}\n{CONTINUOUS_OPTIONS} AS\n{aggregate_select(name)}\nWITH NO DATA;\n"
            f"PERFORM add_continuous_aggregate_policy('{name}', start_offset => INTERVAL '{start_days} days', "
            f"end_offset => INTERVAL '{end_offset}', schedule_interval => INTERVAL '{schedule}', "
            "if_not_exists => true);"
        )
    return "\n".join(statements)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    # Decided inside the database, by what it reports, as in 0001: `migrate --sql` carries both
    # branches. The inner test is planned only with TimescaleDB (its catalogue exists then); it skips
    # a database whose `spans` stayed a plain table because TimescaleDB was installed after 0001.
    from observatory_api.db.timescaledb_ddl import when_timescaledb

    spans_hypertable = (
        "EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = current_schema() AND hypertable_name = 'spans')"
    )
    op.execute(when_timescaledb(timescaledb_statements(_policy_start_days()), only_if=spans_hypertable))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    from observatory_api.db.timescaledb_ddl import retried_while_jobs_race, when_timescaledb

    drops = "\n".join(f"DROP MATERIALIZED VIEW IF EXISTS {name};" for name in reversed(AGGREGATES))
    op.execute(when_timescaledb(retried_while_jobs_race(drops)))
