"""SessionRepository: session summaries, and one session with its traces in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.errors import NotFound
from observatory_api.core.query import TimeWindow
from observatory_api.db import tables
from observatory_api.db.keyset import Keyset
from observatory_api.observability.db import timed
from observatory_api.sessions.schemas import SessionDetail, SessionPage, SessionSummary
from observatory_api.traces.repository import SUMMARY_COLUMNS, to_summary
from observatory_api.traces.schemas import TraceSummary

SessionSort = Literal["last_seen", "-last_seen"]
_s = tables.sessions
_t = tables.traces


class SessionRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine

    @timed("sessions.list_sessions")
    async def list_sessions(
        self,
        *,
        window: TimeWindow,
        user_id: str | None,
        environment: str | None,
        sort: SessionSort,
        limit: int,
        cursor: str | None,
    ) -> SessionPage:
        """Sessions active in `window` (their first and last trace overlap it)."""
        keyset = Keyset(
            sort=sort,
            columns=[_s.c.last_seen, _s.c.session_id],
            window=window,
            filters={"user_id": user_id, "environment": environment},
            cursor=cursor,
            limit=limit,
        )
        conditions: list[ColumnElement[bool]] = [
            _s.c.last_seen >= keyset.window.start,
            _s.c.first_seen < keyset.window.end,
        ]
        if user_id is not None:
            conditions.append(_s.c.user_id == user_id)
        if environment is not None:
            conditions.append(_s.c.environment == environment)
        async with self._engine.connect() as conn:
            rows = await keyset.fetch(conn, select(_s).where(and_(*conditions)))
        page, next_cursor, has_more = keyset.page(rows)
        sessions = [SessionSummary(**row._mapping) for row in page]
        return SessionPage(data=sessions, next_cursor=next_cursor, has_more=has_more)

    @timed("sessions.get_session")
    async def get_session(self, session_id: str, *, limit: int, cursor: str | None) -> SessionDetail:
        """The session and its traces, oldest first, `limit` at a time."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(_s).where(_s.c.session_id == session_id))).first()
        if row is None:
            raise NotFound(f"no session with id {session_id}")
        summary = SessionSummary(**row._mapping)
        keyset = Keyset(
            sort="start_time",
            columns=[_t.c.start_time, _t.c.trace_id],
            window=TimeWindow(start=summary.first_seen, end=summary.last_seen),
            filters={"session_id": session_id},
            cursor=cursor,
            limit=limit,
        )
        stmt = select(*SUMMARY_COLUMNS).where(_t.c.session_id == session_id)
        async with self._engine.connect() as conn:
            trace_rows = await keyset.fetch(conn, stmt)
        page, next_cursor, has_more = keyset.page(trace_rows)
        fields: dict[str, Any] = msgspec.structs.asdict(summary)
        return SessionDetail(**fields, traces=[to_summary(r) for r in page], next_cursor=next_cursor, has_more=has_more)

    @timed("sessions.traces_of_sessions")
    async def traces_of_sessions(self, session_ids: Sequence[str], *, limit: int) -> dict[str, list[TraceSummary]]:
        """The first `limit` traces of each session, oldest first (the first page of
        `get_session`), by session id, in one statement."""
        found: dict[str, list[TraceSummary]] = {session_id: [] for session_id in session_ids}
        if not session_ids:
            return found
        order = (_t.c.start_time, _t.c.trace_id)
        rank = func.row_number().over(partition_by=_t.c.session_id, order_by=order).label("rank")
        ranked = select(*SUMMARY_COLUMNS, rank).where(_t.c.session_id.in_(set(session_ids))).subquery()
        columns = [ranked.c[name] for name in TraceSummary.__struct_fields__]
        stmt = select(*columns).where(ranked.c.rank <= limit).order_by(ranked.c.start_time, ranked.c.trace_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        for row in rows:
            found[row.session_id].append(to_summary(row))
        return found
