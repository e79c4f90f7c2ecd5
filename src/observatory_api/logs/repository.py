"""LogRepository: logs by time, severity, trace, span, service and text."""

from __future__ import annotations

import msgspec
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.errors import InvalidInput
from observatory_api.core.query import TimeWindow
from observatory_api.db import tables
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.keyset import Keyset
from observatory_api.logs.rows import log_columns, log_from_row
from observatory_api.logs.schemas import LogPage
from observatory_api.observability.db import timed

_l = tables.logs


class LogFilters(msgspec.Struct, frozen=True, kw_only=True):
    severity: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    service: str | None = None
    q: str | None = None


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What `GET /logs` asks: the filters and the time range they apply to."""

    window: TimeWindow
    filters: LogFilters


class LogRepository:
    def __init__(self, engine: AsyncEngine, capabilities: DatabaseCapabilities) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine
        self._capabilities = capabilities

    @timed("logs.list_logs")
    async def list_logs(
        self, *, window: TimeWindow, filters: LogFilters, limit: int, cursor: str | None, allow_content: bool
    ) -> LogPage:
        """Newest first, one page at a time. Without `allow_content`, bodies and content attributes
        are left out (core.content) and `q`, a search of the bodies, is refused."""
        if filters.q is not None and not allow_content:
            raise InvalidInput.field("q", "your role may not search log bodies", "query")
        keyset = Keyset(
            sort="-time",
            columns=[_l.c.time, _l.c.log_id],
            window=window,
            filters=msgspec.structs.asdict(filters),
            cursor=cursor,
            limit=limit,
        )
        conditions: list[ColumnElement[bool]] = [keyset.within(_l.c.time)]
        if filters.severity is not None:
            conditions.append(_l.c.severity == filters.severity)
        if filters.trace_id is not None:
            conditions.append(_l.c.trace_id == filters.trace_id)
        if filters.span_id is not None:
            conditions.append(_l.c.span_id == filters.span_id)
        if filters.service is not None:
            conditions.append(_l.c.service_name == filters.service)
        if filters.q:
            escaped = filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(_l.c.body.ilike(f"%{escaped}%", escape="\\"))
        async with self._engine.connect() as conn:
            stmt = select(*log_columns(allow_content=allow_content)).where(and_(*conditions))
            rows = await keyset.fetch(conn, stmt, time_column=_l.c.time, narrow=self._capabilities.timescaledb)
        page, next_cursor, has_more = keyset.page(rows)
        entries = [log_from_row(row, allow_content=allow_content) for row in page]
        return LogPage(data=entries, next_cursor=next_cursor, has_more=has_more)
