"""TelemetryWriter against real SQLite and PostgreSQL: rows, summaries, idempotence, atomicity.

Expected summaries are computed in Python from the records, independently of the SQL.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.canonical_models import canonical_model
from observatory_api.db.tables import logs, sessions, spans, traces
from observatory_api.demo.generator import generate
from observatory_api.storage import LogRecord, SpanRecord, TelemetryWriter
from observatory_api.storage.context import CONTEXT_COLUMNS

END = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FLOATS = ("duration_ms", "cost_usd")


def demo_records(traces_count: int = 40, seed: int = 11) -> tuple[list[SpanRecord], list[LogRecord]]:
    span_records: list[SpanRecord] = []
    log_records: list[LogRecord] = []
    for batch_spans, batch_logs in generate(traces=traces_count, seed=seed, end=END, days=3):
        span_records += batch_spans
        log_records += batch_logs
    return span_records, log_records


def canonical_id(record: SpanRecord) -> str | None:
    # Records written by hand have no model_id yet: the writer gives them the canonical one.
    return record.model_id or canonical_model(record.provider, record.model).model_id


def expected_trace(trace_spans: list[SpanRecord]) -> dict[str, Any]:
    """The summary semantics, written out in Python."""
    root = sorted(trace_spans, key=lambda s: (s.parent_span_id is not None, s.start_time, s.span_id))[0]
    llm_spans = sorted((s for s in trace_spans if s.kind == "llm"), key=lambda s: (s.start_time, s.span_id))
    errors = sum(1 for s in trace_spans if s.status == "error")
    start = min(s.start_time for s in trace_spans)
    end = max(s.end_time for s in trace_spans)

    def root_else_any(name: str) -> Any:
        values = [getattr(s, name) for s in trace_spans if getattr(s, name) is not None]
        return getattr(root, name) if getattr(root, name) is not None else max(values, default=None)

    def total(name: str) -> Any:
        return sum(getattr(s, name) or 0 for s in trace_spans)

    any_ok = any(s.status == "ok" for s in trace_spans)
    status = "error" if errors else ("ok" if any_ok else "unset")
    return {
        "trace_id": root.trace_id,
        "name": root.name,
        "service_name": root.service_name,
        "start_time": start,
        "end_time": end,
        "duration_ms": (end - start) / timedelta(milliseconds=1),
        "span_count": len(trace_spans),
        "llm_call_count": len(llm_spans),
        "error_count": errors,
        "input_tokens": total("input_tokens"),
        "output_tokens": total("output_tokens"),
        "total_tokens": total("total_tokens"),
        "cost_usd": total("cost_usd"),
        "status": status,
        "user_id": root_else_any("user_id"),
        "session_id": root_else_any("session_id"),
        "environment": root_else_any("environment"),
        "provider": llm_spans[0].provider if llm_spans else None,
        "model": canonical_id(llm_spans[0]) if llm_spans else None,
        "models": sorted({model for s in llm_spans if (model := canonical_id(s)) is not None}),
        "tags": root.tags,
        "context_bits": expected_context_bits(trace_spans),
        "unpriced_calls": sum(
            1 for s in trace_spans if s.kind in ("llm", "embedding") and s.cost_usd is None and s.status != "error"
        ),
    }


def expected_context_bits(trace_spans: list[SpanRecord]) -> int:
    """Bit 4 + i: some span names the i-th context column; bit i: some span with a parent misses it."""
    bits = 0
    for at, name in enumerate(CONTEXT_COLUMNS):
        if any(getattr(s, name) for s in trace_spans):
            bits |= 1 << (4 + at)
        if any(s.parent_span_id is not None and not getattr(s, name) for s in trace_spans):
            bits |= 1 << at
    return bits


def expected_sessions(trace_rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in trace_rows:
        if row["session_id"] is not None:
            grouped[row["session_id"]].append(row)
    result = {}
    for session_id, rows in grouped.items():
        by_start = sorted(rows, key=lambda r: (r["start_time"], r["trace_id"]))
        result[session_id] = {
            "session_id": session_id,
            "user_id": next((r["user_id"] for r in by_start if r["user_id"] is not None), None),
            "environment": next((r["environment"] for r in by_start if r["environment"] is not None), None),
            "first_seen": min(r["start_time"] for r in rows),
            "last_seen": max(r["end_time"] for r in rows),
            "trace_count": len(rows),
            "error_count": sum(1 for r in rows if r["status"] == "error"),
            "input_tokens": sum(r["input_tokens"] for r in rows),
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "total_tokens": sum(r["total_tokens"] for r in rows),
            "cost_usd": sum(r["cost_usd"] for r in rows),
            "unpriced_calls": sum(r["unpriced_calls"] for r in rows),
        }
    return result


def group_by_trace(records: list[SpanRecord]) -> dict[str, list[SpanRecord]]:
    grouped: dict[str, list[SpanRecord]] = defaultdict(list)
    for record in records:
        grouped[record.trace_id].append(record)
    return grouped


async def stored(engine: AsyncEngine, table: Any, key: str) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).mappings().all()
    return {row[key]: dict(row) for row in rows}


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


def assert_rows_match(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(actual) == set(expected)
    for name, value in expected.items():
        if name in FLOATS:
            assert actual[name] == pytest.approx(value, abs=1e-6), name
        else:
            assert actual[name] == value, name


def span(
    span_id: str, *, parent: str | None = None, offset_ms: float = 0, length_ms: float = 100, **fields: Any
) -> SpanRecord:
    start = T0 + timedelta(milliseconds=offset_ms)
    end = start + timedelta(milliseconds=length_ms)
    base: dict[str, Any] = {
        "trace_id": "a" * 32,
        "span_id": span_id.ljust(16, "0"),
        "parent_span_id": parent.ljust(16, "0") if parent else None,
        "service_name": "svc",
        "name": f"span-{span_id}",
        "kind": "chain",
        "start_time": start,
        "end_time": end,
        "duration_ms": length_ms,
        "status": "ok",
    }
    return SpanRecord(**{**base, **fields})


async def test_demo_batch_is_stored_with_correct_summaries(migrated_engine: AsyncEngine) -> None:
    span_records, _ = demo_records()
    writer = TelemetryWriter(migrated_engine)

    assert await writer.write_spans(span_records) == len(span_records)

    assert await count(migrated_engine, spans) == len(span_records)
    trace_rows = await stored(migrated_engine, traces, "trace_id")
    expected = {trace_id: expected_trace(group) for trace_id, group in group_by_trace(span_records).items()}
    assert set(trace_rows) == set(expected)
    for trace_id, row in trace_rows.items():
        assert_rows_match(row, expected[trace_id])
    session_rows = await stored(migrated_engine, sessions, "session_id")
    expected_session_rows = expected_sessions(list(expected.values()))
    assert set(session_rows) == set(expected_session_rows)
    for session_id, row in session_rows.items():
        assert_rows_match(row, expected_session_rows[session_id])


async def test_stored_spans_read_back_as_written(migrated_engine: AsyncEngine) -> None:
    span_records, _ = demo_records(traces_count=5)
    await TelemetryWriter(migrated_engine).write_spans(span_records)

    async with migrated_engine.connect() as conn:
        rows = (await conn.execute(select(spans))).mappings().all()
    read_back = {(row["trace_id"], row["span_id"]): SpanRecord(**row) for row in rows}
    assert read_back == {(s.trace_id, s.span_id): s for s in span_records}


async def test_a_trace_split_over_batches_ends_with_the_right_summary(migrated_engine: AsyncEngine) -> None:
    span_records, _ = demo_records(traces_count=30)
    trace_spans = max(group_by_trace(span_records).values(), key=len)
    root = next(s for s in trace_spans if s.parent_span_id is None)
    children = [s for s in trace_spans if s is not root]
    writer = TelemetryWriter(migrated_engine)

    # Children first: until the root arrives, the earliest span names the trace.
    assert await writer.write_spans(children[::2]) == len(children[::2])
    assert await writer.write_spans([*children[1::2], root]) == len(children[1::2]) + 1

    trace_rows = await stored(migrated_engine, traces, "trace_id")
    assert_rows_match(trace_rows[root.trace_id], expected_trace(trace_spans))
    assert trace_rows[root.trace_id]["name"] == root.name


async def test_sessions_stay_right_when_their_traces_arrive_piecemeal(migrated_engine: AsyncEngine) -> None:
    # Sessions are updated by differences, not recomputed: spans in random order and small
    # batches make traces start earlier, turn to errors, gain tokens and arrive before earlier
    # traces of their session (whose user then becomes the session's).
    span_records, _ = demo_records(traces_count=60, seed=5)
    shuffled = random.Random(3).sample(span_records, len(span_records))
    writer = TelemetryWriter(migrated_engine)
    for start in range(0, len(shuffled), 7):
        await writer.write_spans(shuffled[start : start + 7])

    expected = {trace_id: expected_trace(group) for trace_id, group in group_by_trace(span_records).items()}
    session_rows = await stored(migrated_engine, sessions, "session_id")
    expected_session_rows = expected_sessions(list(expected.values()))
    assert len(expected_session_rows) > 3
    assert set(session_rows) == set(expected_session_rows)
    for session_id, row in session_rows.items():
        assert_rows_match(row, expected_session_rows[session_id])


async def test_an_earlier_trace_arriving_later_gives_the_session_its_user(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    await writer.write_spans([span("b", trace_id="b" * 32, offset_ms=10_000, session_id="s", user_id="u2")])
    await writer.write_spans([span("n", trace_id="n" * 32, offset_ms=-5_000, session_id="s")])  # knows no user
    assert (await stored(migrated_engine, sessions, "session_id"))["s"]["user_id"] == "u2"

    await writer.write_spans([span("a", trace_id="a" * 32, offset_ms=0, session_id="s", user_id="u1", environment="e")])

    row = (await stored(migrated_engine, sessions, "session_id"))["s"]
    assert (row["user_id"], row["environment"], row["trace_count"]) == ("u1", "e", 3)
    assert row["first_seen"] == T0 - timedelta(seconds=5)


async def test_summary_without_a_root_uses_the_earliest_span(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    late = span("c", parent="r", offset_ms=50, kind="llm", model="gpt-4o", provider="openai", status="error")
    early = span("b", parent="r", offset_ms=10, kind="tool", name="tool.search", status="unset")
    await writer.write_spans([late, early])

    row = (await stored(migrated_engine, traces, "trace_id"))["a" * 32]
    assert row["name"] == "tool.search"
    assert row["status"] == "error"
    assert_rows_match(row, expected_trace([late, early]))


async def test_models_are_distinct_and_sorted_by_code_point(migrated_engine: AsyncEngine) -> None:
    names = ["gpt-4o", "gpt-4.1-mini", "claude-sonnet-4", "Zeta-1", "gpt-4o", "gpt-4.1"]
    records = [span("r", name="root", status="unset")] + [
        span(f"l{i}", parent="r", offset_ms=10 + i, kind="llm", model=model, provider="p", input_tokens=i)
        for i, model in enumerate(names)
    ]
    await TelemetryWriter(migrated_engine).write_spans(records)

    row = (await stored(migrated_engine, traces, "trace_id"))["a" * 32]
    # Canonical ids (core.canonical_models): known families under their maker, others under the provider.
    assert row["models"] == [
        "anthropic/claude-sonnet-4",
        "openai/gpt-4.1",
        "openai/gpt-4.1-mini",
        "openai/gpt-4o",
        "p/zeta-1",
    ]
    assert row["model"] == "openai/gpt-4o"  # the earliest llm span's
    assert row["status"] == "ok"
    assert row["input_tokens"] == sum(range(len(names)))


async def test_a_retried_batch_stores_nothing_twice(migrated_engine: AsyncEngine) -> None:
    span_records, log_records = demo_records(traces_count=20)
    writer = TelemetryWriter(migrated_engine)
    await writer.write_spans(span_records)
    await writer.write_logs(log_records)
    before = (
        await stored(migrated_engine, traces, "trace_id"),
        await stored(migrated_engine, sessions, "session_id"),
    )

    assert await writer.write_spans(span_records) == 0
    assert await writer.write_logs(log_records) == 0
    # A batch that repeats itself inside stores each row once.
    assert await writer.write_spans([span("x"), span("x")]) == 1

    assert await count(migrated_engine, spans) == len(span_records) + 1
    assert await count(migrated_engine, logs) == len(log_records)
    after = (
        await stored(migrated_engine, traces, "trace_id"),
        await stored(migrated_engine, sessions, "session_id"),
    )
    del after[0]["a" * 32]
    assert after == before


async def test_a_trace_that_moves_session_leaves_the_old_one(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    await writer.write_spans([span("c", parent="r", session_id="old", user_id="u1", input_tokens=5)])
    assert set(await stored(migrated_engine, sessions, "session_id")) == {"old"}

    await writer.write_spans([span("r", session_id="new", user_id="u2", length_ms=500)])

    session_rows = await stored(migrated_engine, sessions, "session_id")
    assert set(session_rows) == {"new"}
    assert session_rows["new"]["user_id"] == "u2"
    assert session_rows["new"]["input_tokens"] == 5


async def test_logs_are_written_once(migrated_engine: AsyncEngine) -> None:
    _, log_records = demo_records(traces_count=10)
    writer = TelemetryWriter(migrated_engine)

    assert await writer.write_logs(log_records) == len(log_records)
    assert await writer.write_logs(log_records[:3]) == 0

    async with migrated_engine.connect() as conn:
        rows = (await conn.execute(select(logs))).mappings().all()
    assert {row["log_id"]: LogRecord(**row) for row in rows} == {log.log_id: log for log in log_records}


async def test_a_failing_batch_leaves_nothing_stored(migrated_engine: AsyncEngine) -> None:
    span_records, log_records = demo_records(traces_count=10)
    writer = TelemetryWriter(migrated_engine)
    await writer.write_spans(span_records[:5])
    before = await stored(migrated_engine, traces, "trace_id")

    broken = msgspec.structs.replace(span_records[-1], name=None)  # violates NOT NULL
    with pytest.raises(IntegrityError):
        await writer.write_spans([*span_records[5:-1], broken])
    with pytest.raises(IntegrityError):
        await writer.write_logs([*log_records[1:], msgspec.structs.replace(log_records[0], body=None)])

    assert await count(migrated_engine, spans) == 5
    assert await count(migrated_engine, logs) == 0
    assert await stored(migrated_engine, traces, "trace_id") == before
    # The connection is usable again, and the rest of the batch goes in once fixed.
    assert await writer.write_spans(span_records) == len(span_records) - 5


async def test_naive_timestamps_are_refused(migrated_engine: AsyncEngine) -> None:
    naive = span("n", start_time=datetime(2025, 1, 1), end_time=datetime(2025, 1, 1))
    with pytest.raises(Exception, match="naive datetime"):
        await TelemetryWriter(migrated_engine).write_spans([naive])
    assert await count(migrated_engine, spans) == 0


async def test_empty_batches_are_no_ops(migrated_engine: AsyncEngine) -> None:
    writer = TelemetryWriter(migrated_engine)
    assert await writer.write_spans([]) == 0
    assert await writer.write_logs([]) == 0
