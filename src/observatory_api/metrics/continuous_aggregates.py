"""The TimescaleDB continuous aggregates that replace the rollup tables (migration 0005 creates them).

Each has the rows of the rollup table it mirrors, columns of the same names and meaning, minus
`dims_key` (the writer's upsert key, which queries never read). They are used when the database
reports them: at start-up the lifespan asks TimescaleDB (only when the extension is installed) and
records the answer in DatabaseCapabilities; the query engine then reads the aggregates instead of
the rollup tables, and the writer leaves the rollup tables alone. The views live in their own MetaData:
`metadata.create_all` and the migrations of the other tables never see them.
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table

from observatory_api.metrics.rollup_tables import ROLLUPS

# Rollup table -> the continuous aggregate with its rows.
AGGREGATE_OF_ROLLUP: dict[str, str] = {
    "metric_rollup_minute": "metric_cagg_minute",
    "metric_rollup_minute_overall": "metric_cagg_minute_overall",
    "metric_rollup_hour": "metric_cagg_hour",
    "metric_rollup_day": "metric_cagg_day",
    "metric_rollup_hour_overall": "metric_cagg_hour_overall",
    "metric_rollup_day_overall": "metric_cagg_day_overall",
}
aggregates_metadata = MetaData()


def _aggregate_view(rollup_table: Table) -> Table:
    columns = [
        Column(column.name, column.type, nullable=column.nullable)
        for column in rollup_table.columns
        if column.name != "dims_key"
    ]
    return Table(AGGREGATE_OF_ROLLUP[rollup_table.name], aggregates_metadata, *columns)


# Rollup table name -> its continuous aggregate, as a Table to select from.
CONTINUOUS_AGGREGATES: dict[str, Table] = {r.table.name: _aggregate_view(r.table) for r in ROLLUPS}


def aggregate_for(rollup_table: Table) -> Table:
    """The continuous aggregate with the rows of `rollup_table`."""
    return CONTINUOUS_AGGREGATES[rollup_table.name]


# What the lifespan asks TimescaleDB for (db.capabilities.detect_capabilities): all, or the rollup tables.
AGGREGATE_VIEWS = tuple(AGGREGATE_OF_ROLLUP.values())
