"""A continuous aggregate read as its real-time view reads it, without the view.

The real-time view of a TimescaleDB continuous aggregate is the materialised hypertable's rows
below the aggregate's watermark, UNION ALL the same aggregate computed from `spans` at and above
it. Through the view, PostgreSQL plans both halves with every one of the ~330 columns (a few ms per
statement) and the raw half computes all of them. The metric engine asks for the watermark instead,
reads the materialised rows below it (only the columns it needs) and reads raw spans above it as it
reads any raw edge: the same rows, so late and backfilled spans count exactly as through the view
(docs/metrics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Column, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.metrics.continuous_aggregates import CONTINUOUS_AGGREGATES

# Every aggregate of the current schema: its materialised hypertable, whether it is real-time, its
# watermark (as the view computes it, in epoch seconds; -inf before the first refresh), and
# whether this role may read the hypertable (else the view is read, as before).
_LOOKUP = text(
    "SELECT ca.user_view_name, h.schema_name, h.table_name, ca.materialized_only, "
    "extract(epoch FROM coalesce(_timescaledb_functions.to_timestamp("
    "_timescaledb_functions.cagg_watermark(ca.mat_hypertable_id)), '-infinity'))::float8, "
    "has_table_privilege(format('%I.%I', h.schema_name, h.table_name), 'SELECT') "
    "FROM _timescaledb_catalog.continuous_agg ca "
    "JOIN _timescaledb_catalog.hypertable h ON h.id = ca.mat_hypertable_id "
    "WHERE ca.user_view_schema = current_schema()"
)


@dataclass(frozen=True, slots=True)
class Materialized:
    """Where one aggregate's rows below `watermark` (epoch seconds) are stored."""

    table: Table
    watermark: float
    realtime: bool  # rows above the watermark come from spans (materialized_only = false)


async def materialized(conn: AsyncConnection) -> dict[str, Materialized]:
    """View name -> its materialised rows, for every aggregate this role can read directly."""
    found = {}
    for view, schema, name, materialized_only, watermark, readable in await conn.execute(_LOOKUP):
        if readable and view in _VIEWS:
            mark = -math.inf if watermark is None else float(watermark)
            found[view] = Materialized(_table(view, schema, name), mark, not materialized_only)
    return found


_VIEWS = {table.name: table for table in CONTINUOUS_AGGREGATES.values()}
_metadata = MetaData()


@cache
def _table(view: str, schema: str, name: str) -> Table:
    """The materialised hypertable of `view`: the view's columns (TimescaleDB stores them as is)."""
    columns = [Column(c.name, c.type, nullable=c.nullable) for c in _VIEWS[view].columns]
    return Table(name, _metadata, *columns, schema=schema)
