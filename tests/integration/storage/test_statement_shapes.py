"""The list statements built once per shape (db.keyset `shape=`) and the trace detail's statements
built once per role: the values of one call never leak into the next. Walks of the spans page
alternate roles, sorts and windows on one process's statements and must equal what each asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.listing import ListFilters
from observatory_api.core.query import TimeWindow
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.tables import spans as _s
from observatory_api.db.tables import traces as _t
from observatory_api.spans.repository import SpanRepository, SpanSort
from observatory_api.traces.repository import TraceRepository

START = datetime(2026, 11, 1, tzinfo=UTC)


def _span(index: int) -> dict[str, Any]:
    start = START + timedelta(seconds=index // 2)  # ties on the start time across page boundaries
    return {
        "trace_id": f"{index % 3:032x}",
        "span_id": f"{index:016x}",
        "service_name": "svc",
        "name": "step",
        "kind": "llm",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=index % 7),
        "duration_ms": float(index % 7),
        "status": "ok",
        "tags": [],
        "input": f"prompt {index}",
        "attributes": {"gen_ai.prompt": f"secret {index}", "n": index},
    }


def _trace(number: int) -> dict[str, Any]:
    return {
        "trace_id": f"{number:032x}",
        "name": "step",
        "service_name": "svc",
        "start_time": START,
        "end_time": START + timedelta(seconds=30),
        "duration_ms": 30_000.0,
        "span_count": 10,
        "llm_call_count": 10,
        "error_count": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cost_usd": 0.0,
        "unpriced_calls": 0,
        "status": "ok",
        "models": [],
        "tags": [],
    }


async def _walk(spans: SpanRepository, *, sort: SpanSort, allow_content: bool, window: TimeWindow) -> list[str]:
    filters = ListFilters(window=window)
    seen: list[str] = []
    cursor = None
    while True:
        page = await spans.list_spans(filters.page(4, cursor), sort=sort, allow_content=allow_content)
        for span in page.data:
            assert window.start <= span.start_time < window.end
            assert (span.input is not None) is allow_content and span.content_redacted is not allow_content
            assert ("gen_ai.prompt" in span.attributes) is allow_content
        seen += [span.span_id for span in page.data]
        if not page.has_more:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("migrated_database", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("timescaledb", [False, True])
async def test_pages_of_one_shape_follow_each_call(migrated_engine: AsyncEngine, timescaledb: bool) -> None:
    async with migrated_engine.begin() as conn:
        await conn.execute(insert(_s), [_span(i) for i in range(30)])
    # `timescaledb` asks for the narrowed statements; they run on plain databases too.
    spans = SpanRepository(
        migrated_engine, DatabaseCapabilities(backend="timescaledb" if timescaledb else "postgresql")
    )
    everything = TimeWindow(start=START, end=START + timedelta(hours=1))
    later = TimeWindow(start=START + timedelta(seconds=5), end=START + timedelta(seconds=11))
    expected_all = sorted(_span(i)["span_id"] for i in range(30))
    expected_later = sorted(_span(i)["span_id"] for i in range(10, 22))
    for allow_content in (True, False, True):
        newest_first = await _walk(spans, sort="-start_time", allow_content=allow_content, window=everything)
        assert sorted(newest_first) == expected_all and len(set(newest_first)) == 30
        assert newest_first[0] == _span(29)["span_id"] or newest_first[0] == _span(28)["span_id"]
        oldest_first = await _walk(spans, sort="start_time", allow_content=allow_content, window=later)
        assert sorted(oldest_first) == expected_later
        by_duration = await _walk(spans, sort="-duration", allow_content=not allow_content, window=later)
        assert sorted(by_duration) == expected_later


@pytest.mark.parametrize("migrated_database", ["sqlite", "postgresql"], indirect=True)
async def test_trace_details_follow_each_call(migrated_engine: AsyncEngine) -> None:
    async with migrated_engine.begin() as conn:
        await conn.execute(insert(_s), [_span(i) for i in range(30)])
        await conn.execute(insert(_t), [_trace(n) for n in range(3)])
    traces = TraceRepository(migrated_engine)
    for allow_content in (True, False, True, False):
        for number in range(3):
            detail = await traces.get_trace(f"{number:032x}", allow_content=allow_content)
            flat, stack = [], list(detail.spans)
            while stack:
                node = stack.pop()
                flat.append(node)
                stack += node.children
            assert sorted(span.span_id for span in flat) == sorted(_span(i)["span_id"] for i in range(number, 30, 3))
            assert all(span.trace_id == detail.trace_id for span in flat)
            assert all((span.input is not None) is allow_content for span in flat)
