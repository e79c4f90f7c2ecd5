"""EXPLAIN ANALYZE of the REST listings on a large PostgreSQL database: which index each one uses.

    .venv/bin/python bench/explain_listings.py --database observatory_bench_metrics

Runs the repositories' real statements (listing traces and spans by time, model, user, session and
status; a trace lookup; logs) against an existing seeded database and prints each plan's scan
nodes and execution time. A `Seq Scan` on spans, traces, sessions or logs is flagged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url

from observatory_api.core.listing import ListFilters
from observatory_api.core.query import TimeWindow
from observatory_api.db import tables
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.engine import create_engine, database_url
from observatory_api.logs.repository import LogFilters, LogRepository
from observatory_api.settings import DatabaseSettings
from observatory_api.spans.repository import SpanRepository
from observatory_api.traces.repository import TraceRepository

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def main(database: str) -> None:
    url = make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    settings = DatabaseSettings(url=url)
    engine = create_engine(settings, database_url(settings))
    capabilities = DatabaseCapabilities.plain(engine)  # as before: no TimescaleDB narrowing
    async with engine.connect() as conn:
        latest_trace = select(tables.traces).order_by(tables.traces.c.start_time.desc()).limit(1)
        sample = (await conn.execute(latest_trace)).one()
        spans = (await conn.execute(text("SELECT count(*) FROM spans"))).scalar()
    latest = sample.start_time
    print(f"database {database}: {spans:,} spans; listings over the 24 hours up to {latest}")
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("SELECT"):
            statements.append((statement, parameters))

    window = TimeWindow(start=latest - timedelta(days=1), end=latest + timedelta(seconds=1))
    cases: list[tuple[str, dict[str, Any]]] = [
        ("by time", {}),
        ("by model", {"model": sample.model}),
        ("by user", {"user_id": sample.user_id}),
        ("by session", {"session_id": sample.session_id}),
        ("by status", {"status": "error"}),
    ]
    for label, filters in cases:
        page = ListFilters(window=window, **filters).page(50, None)
        statements.clear()
        await TraceRepository(engine).list_traces(page, sort="-start_time", allow_content=True)
        await SpanRepository(engine, capabilities).list_spans(page, sort="-start_time", allow_content=True)
        await explain(engine, f"traces and spans {label}", statements)
    statements.clear()
    await TraceRepository(engine).get_trace(sample.trace_id, allow_content=True)
    await LogRepository(engine, capabilities).list_logs(
        window=window, filters=LogFilters(), limit=50, cursor=None, allow_content=True
    )
    await explain(engine, "trace detail and logs", statements)
    await engine.dispose()


async def explain(engine: Any, label: str, statements: list[tuple[str, Any]]) -> None:
    print(f"\n== {label}")
    recorded = list(statements)
    async with engine.connect() as conn:
        for statement, parameters in recorded:
            plan = [row[0] for row in (await conn.exec_driver_sql(f"EXPLAIN ANALYZE {statement}", parameters)).all()]
            first_table = re.search(r"\bFROM\s+(\w+)", statement).group(1)  # type: ignore[union-attr]
            print(f"  {first_table}:")
            for line in plan:
                if "Scan" in line or "Execution Time" in line:
                    flag = "  <-- SEQ SCAN" if "Seq Scan on" in line and first_table in line else ""
                    print(f"    {line.strip()[:140]}{flag}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="an existing, seeded database on the admin server")
    asyncio.run(main(parser.parse_args().database))
