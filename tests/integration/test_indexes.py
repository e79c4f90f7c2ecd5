"""Every listing the API runs on PostgreSQL has an index to use: with sequential scans disabled, the
planner still falls back to one only when no index applies, so a Seq Scan in the plan means the
query would scan the table at scale."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.listing import ListFilters
from observatory_api.core.query import TimeWindow
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.engine import create_engine, database_url
from observatory_api.logs.repository import LogFilters, LogRepository
from observatory_api.sessions.repository import SessionRepository
from observatory_api.spans.repository import SpanRepository
from observatory_api.traces.repository import TraceRepository
from tests import dataset

WINDOW = TimeWindow(start=dataset.DATASET_END - timedelta(days=1), end=dataset.DATASET_END)
SCANNED_TABLES = {"spans", "traces", "sessions", "logs"}


@pytest_asyncio.fixture
async def recording_engine(seeded_databases: dict) -> AsyncIterator[tuple[AsyncEngine, list]]:
    settings = seeded_databases["postgresql"]
    engine = create_engine(settings, database_url(settings))
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    yield engine, statements
    await engine.dispose()


async def seq_scans(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> list[str]:
    found = []
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)).scalar_one()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            found += [f"{node} in: {statement[:120]}" for node in _scanned(plan[0]["Plan"])]
    return found


def _scanned(node: dict[str, Any]) -> list[str]:
    hits = []
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in SCANNED_TABLES:
        hits.append(f"Seq Scan on {node['Relation Name']}")
    for child in node.get("Plans", []):
        hits += _scanned(child)
    return hits


LISTINGS = [
    {},
    {"model": "gpt-4o-mini"},
    {"user_id": "user-0001"},
    {"session_id": "sess_0000000000000000"},
    {"status": "error"},
]


@pytest.mark.parametrize("filters", LISTINGS, ids=lambda f: next(iter(f), "time"))
async def test_trace_and_span_listings_use_indexes(recording_engine: tuple, filters: dict) -> None:
    engine, statements = recording_engine
    page = ListFilters(window=WINDOW, **filters).page(50, None)
    await TraceRepository(engine).list_traces(page, sort="-start_time", allow_content=True)
    await SpanRepository(engine, DatabaseCapabilities.plain(engine)).list_spans(
        page, sort="-start_time", allow_content=True
    )
    assert statements
    assert await seq_scans(engine, statements) == []


async def test_lookups_by_id_and_other_listings_use_indexes(recording_engine: tuple) -> None:
    engine, statements = recording_engine
    trace_id = next(iter(dataset.spans_by_trace()))
    await TraceRepository(engine).get_trace(trace_id, allow_content=True)
    await LogRepository(engine, DatabaseCapabilities.plain(engine)).list_logs(
        window=WINDOW, filters=LogFilters(), limit=50, cursor=None, allow_content=True
    )
    await LogRepository(engine, DatabaseCapabilities.plain(engine)).list_logs(
        window=WINDOW, filters=LogFilters(trace_id=trace_id), limit=50, cursor=None, allow_content=True
    )
    sessions = SessionRepository(engine)
    await sessions.list_sessions(
        window=WINDOW, user_id=None, environment=None, sort="-last_seen", limit=50, cursor=None
    )
    await sessions.list_sessions(
        window=WINDOW, user_id="user-0001", environment=None, sort="-last_seen", limit=50, cursor=None
    )
    assert len(statements) >= 6
    assert await seq_scans(engine, statements) == []
