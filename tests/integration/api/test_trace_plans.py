"""The by-trace lookups are planned for their own values at every execution (db.custom_plans).

PostgreSQL builds a generic plan for a prepared statement at its sixth execution on a connection;
over TimescaleDB's hypertables building it cost 55-140 ms. Read here from the server's own
counters (`pg_prepared_statements`, per session), not from timings: after many lookups on one
connection, no statement of them has been executed more than five times, so none reached the sixth.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, text

from observatory_api.db import tables
from observatory_api.db.custom_plans import CUSTOM_PLANS, execute_custom_planned
from observatory_api.db.engine import create_engine, readonly_url
from observatory_api.settings import DatabaseSettings
from observatory_api.traces.repository import TraceRepository

RUNS = 12
# The lookups' statements: a trace's spans or logs (every other statement keeps the dialect's cache).
LOOKUPS = text(
    "SELECT statement, custom_plans, generic_plans FROM pg_prepared_statements "
    "WHERE (statement LIKE '%FROM spans%' OR statement LIKE '%FROM logs%') AND statement LIKE '%trace_id%' "
    "AND statement NOT LIKE '%pg_prepared_statements%'"
)


async def _lookups_after_traces(settings: DatabaseSettings, *, custom_plans: bool) -> list[Row[Any]]:
    """The server's counters of the lookup statements after RUNS traces' lookups on one connection."""
    # One connection, as a pooled one serving requests one after another; the API's read engine.
    engine = create_engine(settings, readonly_url(settings), readonly=True, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            trace_ids = list(
                (
                    await conn.scalars(
                        select(tables.logs.c.trace_id).where(tables.logs.c.trace_id.is_not(None)).distinct().limit(RUNS)
                    )
                ).all()
            )
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert len(trace_ids) == RUNS
        repository = TraceRepository(engine, custom_plans=custom_plans)
        for trace_id in trace_ids:  # different values each time, as real traffic asks
            detail = await repository.get_trace(trace_id, allow_content=True)
            assert detail.spans and detail.logs
            await repository.spans_of_traces([trace_id], allow_content=True)
            await repository.logs_of_traces([trace_id], allow_content=True)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT pg_backend_pid()")) == pid
            return list((await conn.execute(LOOKUPS)).all())
    finally:
        await engine.dispose()


async def test_by_trace_lookups_never_reach_a_generic_plan(seeded_databases: dict[str, DatabaseSettings]) -> None:
    found = await _lookups_after_traces(seeded_databases["postgresql"], custom_plans=True)
    executions = {row.statement: row.custom_plans + row.generic_plans for row in found}
    assert all(count <= CUSTOM_PLANS for count in executions.values()), executions
    assert found  # the lookups are prepared statements (the cache kept them between executions)
    assert sum(row.generic_plans for row in found) == 0


async def test_without_custom_plans_the_lookups_keep_their_prepared_statement(
    seeded_databases: dict[str, DatabaseSettings],
) -> None:
    # What the API does on plain PostgreSQL (deps.py): a generic plan is cheap to build there, so
    # the trace detail's lookups are prepared once per connection, not again every fifth time.
    found = await _lookups_after_traces(seeded_databases["postgresql"], custom_plans=False)
    detail_lookups = [row for row in found if "ORDER BY" in row.statement and " IN " not in row.statement]
    assert len(detail_lookups) == 2  # a trace's spans and its logs
    assert all(row.custom_plans + row.generic_plans == RUNS for row in detail_lookups)


async def test_the_counted_statements_stay_bounded(seeded_databases: dict[str, DatabaseSettings]) -> None:
    # The GraphQL loaders' SQL varies with the number of traces and ranges: counts of statements
    # the dialect's cache evicted are forgotten.
    settings = seeded_databases["postgresql"]
    engine = create_engine(settings, readonly_url(settings), readonly=True, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            for value in range(400):
                assert (await execute_custom_planned(conn, text(f"SELECT {value}"))).scalar_one() == value
            counted = (await conn.get_raw_connection()).info["observatory_custom_planned_runs"]
    finally:
        await engine.dispose()
    # The dialect's cache (100 statements) trims itself once half as many again are in it.
    assert 0 < len(counted) <= 151
