"""Keyset.fetch narrowed (the page's last time read first, then the page from that time on; what
TimescaleDB's compressed chunks need) gives exactly the pages of the plain walk, on every backend:
ties on the time column across page boundaries, both directions, and with a filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import and_, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.query import TimeWindow
from observatory_api.db.keyset import Keyset
from observatory_api.db.tables import spans as _s

START = datetime(2026, 11, 1, tzinfo=UTC)


def _row(index: int) -> dict[str, Any]:
    # Three spans share each start time (every page boundary of a page of 4 falls inside a tie).
    start = START + timedelta(seconds=index // 3)
    return {
        "trace_id": f"{index % 7:032x}",
        "span_id": f"{index:016x}",
        "service_name": "svc" if index % 5 else "other",
        "name": "step",
        "kind": "llm",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=5),
        "duration_ms": 5.0,
        "status": "ok",
        "tags": [],
        "attributes": {},
    }


async def _walk(engine: AsyncEngine, *, descending: bool, narrow: bool, service: str | None) -> list[list[str]]:
    window = TimeWindow(start=START, end=START + timedelta(hours=1))
    pages: list[list[str]] = []
    cursor = None
    while True:
        keyset = Keyset(
            sort="-start_time" if descending else "start_time",
            columns=[_s.c.start_time, _s.c.trace_id, _s.c.span_id],
            window=window,
            filters={"service": service},
            cursor=cursor,
            limit=4,
        )
        condition = keyset.within(_s.c.start_time)
        if service is not None:
            condition = and_(condition, _s.c.service_name == service)
        stmt = select(_s.c.start_time, _s.c.trace_id, _s.c.span_id).where(condition)
        async with engine.connect() as conn:
            rows = await keyset.fetch(conn, stmt, time_column=_s.c.start_time, narrow=narrow)
        page, cursor, has_more = keyset.page(rows)
        pages.append([row.span_id for row in page])
        if not has_more:
            return pages


@pytest.mark.parametrize("migrated_database", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("service", [None, "svc"])
async def test_narrowed_pages_equal_the_plain_walk(
    migrated_engine: AsyncEngine, descending: bool, service: str | None
) -> None:
    async with migrated_engine.begin() as conn:
        await conn.execute(insert(_s), [_row(i) for i in range(41)])
    plain = await _walk(migrated_engine, descending=descending, narrow=False, service=service)
    narrowed = await _walk(migrated_engine, descending=descending, narrow=True, service=service)
    assert narrowed == plain
    # The walk saw every matching span once, in several pages.
    seen = [span for page in plain for span in page]
    expected = 41 if service is None else sum(1 for i in range(41) if i % 5)
    assert len(seen) == len(set(seen)) == expected and len(plain) > 3
