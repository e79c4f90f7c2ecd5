"""The TimescaleDB continuous aggregates that replace the rollup tables (migration 0005 creates them).

Each has the rows of the rollup table it mirrors, columns of the same names and meaning, minus
`dims_key` (the writer's upsert key, which queries never read). They are used when the database
reports them: at start-up the lifespan asks TimescaleDB (only when the extension is installed) and
marks each engine's dialect; the query engine then reads the aggregates instead of the rollup
tables, and the writer leaves the rollup tables alone. The views live in their own MetaData:
`metadata.create_all` and the migrations of the other tables never see them.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Column, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.metrics.rollup_tables import ROLLUPS

logger = logging.getLogger("observatory_api.metrics")

# Rollup table -> the continuous aggregate with its rows.
AGGREGATE_OF_ROLLUP: dict[str, str] = {
    "metric_rollup_minute": "metric_cagg_minute",
    "metric_rollup_minute_overall": "metric_cagg_minute_overall",
    "metric_rollup_hour": "metric_cagg_hour",
    "metric_rollup_day": "metric_cagg_day",
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


def mark_continuous_aggregates(dialect: Any, present: bool) -> None:
    """Remember on the engine's dialect whether the continuous aggregates exist (checked at start-up)."""
    dialect.observatory_continuous_aggregates = present


def has_continuous_aggregates(dialect: Any) -> bool:
    return bool(getattr(dialect, "observatory_continuous_aggregates", False))


_REPORTED = text(
    "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema()"
)


async def find_continuous_aggregates(engine: AsyncEngine, *, timescaledb: bool) -> bool:
    """Whether TimescaleDB reports every continuous aggregate of migration 0005.

    Asked only when TimescaleDB is installed (plain PostgreSQL has no `timescaledb_information`).
    When the check fails, or only some aggregates exist, the rollup tables stay in use.
    """
    if not timescaledb or engine.dialect.name != "postgresql":
        return False
    try:
        async with engine.connect() as connection:
            reported = set((await connection.scalars(_REPORTED)).all())
    except Exception:
        logger.warning("could not list the continuous aggregates; reading the rollup tables")
        return False
    missing = sorted(set(AGGREGATE_OF_ROLLUP.values()) - reported)
    if missing:
        logger.warning("continuous aggregates missing (%s); reading the rollup tables", ", ".join(missing))
        return False
    return True


_INSTALLED = text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")


async def use_continuous_aggregates_if_present(engine: AsyncEngine) -> bool:
    """For a writer outside the server (`seed`, benchmarks): when the database reports every
    continuous aggregate, mark `engine`'s dialect so that its writers leave the rollup tables
    alone, as the server's lifespan does. Returns whether it did; an unmarked dialect is left as
    it is."""
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as connection:
        installed = (await connection.execute(_INSTALLED)).first() is not None
    present = await find_continuous_aggregates(engine, timescaledb=installed)
    if present:
        mark_continuous_aggregates(engine.dialect, True)
    return present
