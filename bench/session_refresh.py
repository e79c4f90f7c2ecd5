"""Session summaries as sessions grow: recomputing a session from all its traces against adding a change.

    .venv/bin/python bench/session_refresh.py --sessions 600 --lengths 10 100 1000 2000

Creates a scratch PostgreSQL database (`observatory_bench_*` on OBSERVATORY_BENCH_POSTGRES_URL,
default postgres@127.0.0.1), migrates it, and fills `traces` (synthetic rows, in SQL) until each of
`--sessions` sessions has the next of `--lengths` traces. At each length it times, for all those
sessions at once (as one write that touched one trace in each), the writer's two session
statements: `refresh_sessions` (every trace of each session read again; what the writer did before
and still does for a session that lost a trace) and `add_session_changes` (the write's change
added to each row). Each is run `--repeat` times in a transaction that is rolled back; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.settings import DatabaseSettings
from observatory_api.storage.session_changes import SessionChange
from observatory_api.storage.summaries import IDS, add_session_changes, refresh_sessions

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 11, 1, tzinfo=UTC)

# Traces `from_index` .. `to_index` - 1 of every session; trace i of a session starts i minutes in.
_FILL = text(
    """
    INSERT INTO traces (trace_id, name, service_name, start_time, end_time, duration_ms, span_count,
        llm_call_count, error_count, input_tokens, output_tokens, total_tokens, cost_usd, status,
        user_id, session_id, environment, provider, model, models, tags)
    SELECT md5(s || ':' || i), 'chat', 'svc', CAST(:start AS timestamptz) + i * interval '1 minute',
        CAST(:start AS timestamptz) + i * interval '1 minute' + interval '2 seconds', 2000, 3, 1, (i % 20 = 0)::int,
        100, 50, 150, 0.001, CASE WHEN i % 20 = 0 THEN 'error' ELSE 'ok' END,
        'user_' || (s % 100), 'sess_' || s, 'production', 'openai', 'gpt-4o', '["gpt-4o"]', '[]'
    FROM generate_series(0, :sessions - 1) AS s, generate_series(:from_index, :to_index - 1) AS i
    """
)


async def _fill(engine: AsyncEngine, sessions: int, from_index: int, to_index: int) -> None:
    async with engine.begin() as conn:
        params = {"start": START, "sessions": sessions, "from_index": from_index, "to_index": to_index}
        await conn.execute(_FILL, params)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE traces")


async def _timed(engine: AsyncEngine, statement: str, session_ids: list[str], length: int, repeat: int) -> float:
    changes = [
        SessionChange(session_id, START, START + timedelta(minutes=length), trace_count=1, input_tokens=100)
        for session_id in session_ids
    ]
    timings = []
    for _ in range(repeat):
        async with engine.begin() as conn:
            await conn.exec_driver_sql("SET LOCAL jit = off")  # as the writer's transactions
            started = time.perf_counter()
            if statement == "recompute":
                await conn.execute(refresh_sessions("postgresql"), {IDS: session_ids})
            else:
                await add_session_changes(conn, changes)
            timings.append(time.perf_counter() - started)
            await conn.rollback()
    return statistics.median(timings) * 1000


async def run(sessions: int, lengths: list[int], repeat: int) -> None:
    name = f"observatory_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    settings = DatabaseSettings(url=make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    engine = create_engine(settings, database_url(settings))
    try:
        await upgrade(engine, settings)
        session_ids = sorted(f"sess_{s}" for s in range(sessions))
        filled = 0
        print(f"{sessions} sessions touched by one write; median of {repeat} runs")
        print("traces per session | recompute ms | add change ms | ratio")
        for length in sorted(lengths):
            await _fill(engine, sessions, filled, length)
            if not filled:  # the session rows exist, as they would
                async with engine.begin() as conn:
                    await conn.execute(refresh_sessions("postgresql"), {IDS: session_ids})
            filled = length
            recompute = await _timed(engine, "recompute", session_ids, length, repeat)
            added = await _timed(engine, "add", session_ids, length, repeat)
            print(f"{length:>18,} | {recompute:12.1f} | {added:13.1f} | {recompute / added:5.1f}x")
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=600)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000, 2000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.lengths, args.repeat))


if __name__ == "__main__":
    main()
