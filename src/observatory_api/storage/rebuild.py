"""Recompute every trace and session summary from the rows beneath them (`observatory-api summaries rebuild`).

The writer keeps the summaries in step as it stores spans, sessions by adding each write's change.
This is the repair for anything that went around it: spans deleted by hand or by a TimescaleDB
retention policy, a restored backup, a bug. It runs beside a live writer: each chunk of ids is one
short transaction that takes the writer's advisory locks on those traces or sessions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import sessions, spans, traces
from observatory_api.db.write_sql import lock_summaries, prepare_write_transaction
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
    with_spans = select(spans.c.trace_id).distinct()
    named = select(traces.c.session_id).distinct().where(traces.c.session_id.is_not(None))
    trace_count = await _run_in_chunks(engine, with_spans, "traces", refresh_traces(dialect_name), progress)
    session_count = await _run_in_chunks(engine, named, "sessions", refresh_sessions(dialect_name), progress)
    await _run_in_chunks(engine, select(sessions.c.session_id), "sessions", delete_empty_sessions(dialect_name))
    return Rebuilt(trace_count, session_count)


async def _run_in_chunks(
    engine: AsyncEngine, ids: Select[Any], kind: str, statement: Any, progress: Progress | None = None
) -> int:
    """Run `statement` over `ids` (of `kind`: "traces" or "sessions"), one short transaction per
    chunk under the writer's locks on those ids; returns how many ids there were."""
    done = 0
    async for chunk in _id_chunks(engine, ids):
        async with engine.begin() as conn:
            await prepare_write_transaction(conn)
            await lock_summaries(conn, kind, chunk)
            await conn.execute(statement, {IDS: chunk})
        done += len(chunk)
        if progress:
            progress(kind, done)
    return done


async def _id_chunks(engine: AsyncEngine, ids: Select[Any]) -> AsyncIterator[list[str]]:
    """`ids` (one column of distinct strings) in key order, CHUNK at a time, each read in its own
    short query (keyset pagination: no long-running read beside the writer)."""
    (column,) = ids.selected_columns
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
