"""Statements planned for their own values at every execution, on asyncpg.

The asyncpg dialect prepares each statement once per connection and reuses it. PostgreSQL plans a
prepared statement for its values five times, then at the sixth execution also builds a generic
plan (for any values) to compare costs. For the by-trace lookups over TimescaleDB's hypertables
that generic plan covers every chunk and its compressed twin: building it took 130-270 ms, for a
lookup that takes a few ms planned for its values (bench/RESULTS.md, "Generic plans of the
by-trace lookups"). `execute_custom_planned` counts a statement's executions on the connection
and, after its fifth, drops it from the dialect's cache: the next execution prepares it afresh
and starts again at one, so PostgreSQL never builds a generic plan for it, at the price of one
Parse every five executions (preparing it at every execution cost one more round trip each).
Every other statement keeps the dialect's cache as is: the metric engine's need their generic
plans. `plan_cache_mode` cannot do this for one statement: it is a session setting, and the API's
reads run in autocommit (a `SET LOCAL` would not reach the statement). The API uses it on
TimescaleDB only (`TraceRepository(custom_plans=...)`, set in deps.py): plain PostgreSQL builds
the generic plan of these lookups cheaply, and the Parse every five executions was 0.2-0.3 ms of
CPU a trace detail there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncConnection

# Executions PostgreSQL plans for their values before it builds a generic plan (plancache.c).
CUSTOM_PLANS = 5
# The asyncpg adapter's per-connection statement cache (sqlalchemy.dialects.postgresql.asyncpg),
# keyed by the SQL it prepared. Private to SQLAlchemy, so tests/integration/api/test_trace_plans.py
# checks the outcome on the server on every supported PostgreSQL.
_CACHE_ATTRIBUTE = "_prepared_statement_cache"
# The connection's `info` key of the executions counted here, by SQL.
_RUNS_KEY = "observatory_custom_planned_runs"
# Past this many counted statements, those no longer in the cache (prepared afresh, if ever run
# again: counted from one) are forgotten.
_MAX_COUNTED = 128


async def execute_custom_planned(
    conn: AsyncConnection, statement: Executable, parameters: Mapping[str, Any] | None = None
) -> CursorResult[Any]:
    """`conn.execute(statement, parameters)`, never on a generic plan (on asyncpg; elsewhere as is)."""
    result = await conn.execute(statement, parameters)
    if conn.dialect.driver != "asyncpg":
        return result
    raw = await conn.get_raw_connection()
    cache = getattr(raw.dbapi_connection, _CACHE_ATTRIBUTE, None)
    if cache is None:  # no cache: every statement is prepared afresh anyway
        return result
    operation = result.context.statement  # the SQL the adapter prepared: its cache key
    runs: dict[str, int] = raw.info.setdefault(_RUNS_KEY, {})
    runs[operation] = runs.get(operation, 0) + 1
    if runs[operation] >= CUSTOM_PLANS:
        cache.pop(operation, None)  # asyncpg closes the server's statement once unreferenced
        del runs[operation]
    if len(runs) > _MAX_COUNTED:  # the GraphQL loaders' SQL varies: forget what the cache evicted
        for gone in [sql for sql in runs if sql not in cache]:
            del runs[gone]
    return result
