"""SpanRepository: spans across traces, filtered like traces plus kind and trace id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.listing import ListPage
from observatory_api.core.query import utc
from observatory_api.db import tables
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.filters import compile_span_filter, page_statement
from observatory_api.db.keyset import Keyset
from observatory_api.observability.db import timed
from observatory_api.spans.rows import span_columns, span_from_row
from observatory_api.spans.schemas import Span, SpanPage

SpanSort = Literal["start_time", "-start_time", "duration", "-duration"]
_s = tables.spans


class SpanRepository:
    def __init__(self, engine: AsyncEngine, capabilities: DatabaseCapabilities) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine
        self._capabilities = capabilities

    @timed("spans.list_spans")
    async def list_spans(self, page: ListPage, *, sort: SpanSort, allow_content: bool) -> SpanPage:
        """One page of spans started in the page's window, matching its filters, in `sort` order.

        Without `allow_content`, content is neither returned nor searchable (core.content).
        """
        first = _s.c.start_time if sort.lstrip("-") == "start_time" else _s.c.duration_ms
        keyset = Keyset.of_page(page, sort=sort, columns=[first, _s.c.trace_id, _s.c.span_id])
        columns = span_columns(allow_content=allow_content)
        stmt, shape = page_statement(
            keyset, page, columns, _s.c.start_time, compile_span_filter, allow_content=allow_content, name="spans"
        )
        async with self._engine.connect() as conn:
            rows = await keyset.fetch(
                conn, stmt, time_column=_s.c.start_time, narrow=self._capabilities.timescaledb, shape=shape
            )
        found, next_cursor, has_more = keyset.page(rows)
        spans = [span_from_row(row, allow_content=allow_content, make=Span) for row in found]
        return SpanPage(data=spans, next_cursor=next_cursor, has_more=has_more)

    @timed("spans.model_seen_ranges")
    async def model_seen_ranges(
        self, models: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[datetime | None, datetime | None]]:
        """The first and last start of a span of each `(provider, model)` of the catalogue, whose
        id is the canonical `provider/model` (the `first_seen` and `last_seen` of
        `GET /models/{id}`), in one statement; (None, None) when none used it."""
        found: dict[tuple[str, str], tuple[datetime | None, datetime | None]] = {key: (None, None) for key in models}
        if not models:
            return found
        ids = {f"{provider}/{name}": (provider, name) for provider, name in models}
        stmt = (
            select(_s.c.model_id, func.min(_s.c.start_time), func.max(_s.c.start_time))
            .where(_s.c.model_id.in_(sorted(ids)))
            .group_by(_s.c.model_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        for model_id, first_seen, last_seen in rows:
            found[ids[model_id]] = (_as_utc(first_seen), _as_utc(last_seen))
        return found

    @timed("spans.model_snapshots")
    async def model_snapshots(self, model_ids: Sequence[str]) -> dict[str, list[str]]:
        """The model names as sent (dated snapshots, prefixed names) seen under each canonical id."""
        found: dict[str, list[str]] = {model_id: [] for model_id in model_ids}
        if not model_ids:
            return found
        stmt = (
            select(_s.c.model_id, _s.c.model)
            .distinct()
            .where(_s.c.model_id.in_(sorted(set(model_ids))), _s.c.model.is_not(None))
            .order_by(_s.c.model_id, _s.c.model)
        )
        async with self._engine.connect() as conn:
            for model_id, name in (await conn.execute(stmt)).all():
                found[model_id].append(name)
        return found


def _as_utc(value: Any) -> datetime | None:
    # SQLite gives min/max of a timestamp column back as text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value) if isinstance(value, datetime) else None
