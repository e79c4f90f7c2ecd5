"""Recompute every trace and session summary from the rows beneath them (`observatory-api summaries rebuild`).

The writer keeps the summaries in step as it stores spans, sessions by adding each write's change.
This is the repair for anything that went around it: spans deleted by hand or by a TimescaleDB
retention policy, a restored backup, a bug. It runs beside a live writer: each chunk of ids is one
short transaction that takes the writer's advisory locks on those traces or sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.dialect import lock_summaries, prepare_write_transaction
from observatory_api.db.tables import sessions, spans, traces
from observatory_api.storage.summaries import IDS, delete_empty_sessions, refresh_sessions, refresh_traces

CHUNK = 1000

Progress = Callable[[str, int], None]  # (what, how many done so far)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    traces: int
    sessions: int


async def rebuild_summaries(engine: AsyncEngine, *, progress: Progress | None = None) -> Rebuilt:
    """Recompute the summary of every trace that has spans, then of every session any trace names,
    and drop the session rows no trace names any more."""
    dialect_name = engine.dialect.name
    trace_count = 0
    async for chunk in _id_chunks(engine, select(spans.c.trace_id).distinct(), spans.c.trace_id):
        async with engine.begin() as conn:
            await prepare_write_transaction(conn)
            await lock_summaries(conn, "traces", chunk)
            await conn.execute(refresh_traces(dialect_name), {IDS: chunk})
        trace_count += len(chunk)
        if progress:
            progress("traces", trace_count)
    session_count = 0
    named = select(traces.c.session_id).distinct().where(traces.c.session_id.is_not(None))
    async for chunk in _id_chunks(engine, named, traces.c.session_id):
        async with engine.begin() as conn:
            await prepare_write_transaction(conn)
            await lock_summaries(conn, "sessions", chunk)
            await conn.execute(refresh_sessions(dialect_name), {IDS: chunk})
        session_count += len(chunk)
        if progress:
            progress("sessions", session_count)
    async for chunk in _id_chunks(engine, select(sessions.c.session_id), sessions.c.session_id):
        async with engine.begin() as conn:
            await lock_summaries(conn, "sessions", chunk)
            await conn.execute(delete_empty_sessions(dialect_name), {IDS: chunk})
    return Rebuilt(trace_count, session_count)


async def _id_chunks(engine: AsyncEngine, ids: Select[Any], column: Any) -> Any:
    """`ids` (one column of distinct strings) in key order, CHUNK at a time, each read in its own
    short query (keyset pagination: no long-running read beside the writer)."""
    after: str | None = None
    while True:
        page = ids.order_by(column).limit(CHUNK)
        if after is not None:
            page = page.where(column > after)
        async with engine.connect() as conn:
            chunk = list((await conn.scalars(page)).all())
        if not chunk:
            return
        yield chunk
        after = chunk[-1]
