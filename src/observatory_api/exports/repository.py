"""The sort keys of the row an export resumes after (`after=`): one indexed lookup each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.query import TimeWindow
from observatory_api.db import tables

_s, _t, _l = tables.spans, tables.traces, tables.logs


class ExportKeyRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def span_key(self, trace_id: str, span_id: str, window: TimeWindow) -> dict[str, Any] | None:
        stmt = select(_s.c.start_time, _s.c.duration_ms, _s.c.trace_id, _s.c.span_id).where(
            _s.c.trace_id == trace_id,
            _s.c.span_id == span_id,
            # Bounded by the export's window: a lookup by id alone probes every chunk of a hypertable.
            _s.c.start_time >= window.start,
            _s.c.start_time < window.end,
        )
        return await self._first(stmt)

    async def trace_key(self, trace_id: str) -> dict[str, Any] | None:
        stmt = select(_t.c.start_time, _t.c.duration_ms, _t.c.cost_usd, _t.c.trace_id).where(_t.c.trace_id == trace_id)
        return await self._first(stmt)

    async def log_key(self, log_id: str, window: TimeWindow) -> dict[str, Any] | None:
        stmt = select(_l.c.time, _l.c.log_id).where(
            _l.c.log_id == log_id, _l.c.time >= window.start, _l.c.time < window.end
        )
        return await self._first(stmt)

    async def _first(self, stmt: Any) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return dict(row._mapping) if row is not None else None
