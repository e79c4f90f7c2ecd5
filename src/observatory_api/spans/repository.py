"""SpanRepository: spans across traces, filtered like traces plus kind and trace id."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db import tables
from observatory_api.db.keyset import Keyset
from observatory_api.filters import Node, compile_span_filter
from observatory_api.observability.db import timed
from observatory_api.query import TimeWindow
from observatory_api.spans.schemas import Span, SpanPage

SpanSort = Literal["start_time", "-start_time", "duration", "-duration"]
_s = tables.spans


class SpanRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine

    @timed("spans.list_spans")
    async def list_spans(
        self,
        *,
        window: TimeWindow,
        filter_node: Node | None,
        filter_fields: dict[str, Any],
        sort: SpanSort,
        limit: int,
        cursor: str | None,
        allow_content: bool = True,
    ) -> SpanPage:
        """One page of spans started in `window`, matching `filter_node`, in `sort` order."""
        first = _s.c.start_time if sort.lstrip("-") == "start_time" else _s.c.duration_ms
        keyset = Keyset(
            sort=sort,
            columns=[first, _s.c.trace_id, _s.c.span_id],
            descending=sort.startswith("-"),
            window=window,
            filters=filter_fields,
            cursor=cursor,
            limit=limit,
        )
        condition = and_(_s.c.start_time >= keyset.window.start, _s.c.start_time < keyset.window.end)
        if filter_node is not None:
            condition = and_(condition, compile_span_filter(filter_node, allow_content=allow_content))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(keyset.apply(select(_s).where(condition)))).all()
        page, next_cursor, has_more = keyset.page(rows)
        spans = [Span(**row._mapping) for row in page]
        return SpanPage(data=spans, next_cursor=next_cursor, has_more=has_more)
