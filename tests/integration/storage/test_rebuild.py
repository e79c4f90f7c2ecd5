"""rebuild_summaries: every trace and session summary recomputed from what is stored, whatever
happened to the summaries (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import sessions, spans, traces
from observatory_api.storage import TelemetryWriter
from observatory_api.storage.rebuild import rebuild_summaries
from tests.integration.storage.test_writer import (
    T0,
    assert_rows_match,
    demo_records,
    expected_sessions,
    expected_trace,
    group_by_trace,
    stored,
)


async def test_rebuild_matches_the_stored_spans_after_changes_behind_the_writer(migrated_engine: AsyncEngine) -> None:
    span_records, _ = demo_records(traces_count=40, seed=9)
    await TelemetryWriter(migrated_engine).write_spans(span_records)
    by_trace = group_by_trace(span_records)
    trimmed, dropped = sorted(by_trace)[:2]
    leaf = next(s for s in by_trace[trimmed] if s.parent_span_id is not None)
    async with migrated_engine.begin() as conn:
        # As a retention policy or an operator might: spans gone, summaries untouched or damaged.
        await conn.execute(delete(spans).where(spans.c.trace_id == dropped))
        await conn.execute(delete(spans).where(spans.c.trace_id == trimmed, spans.c.span_id == leaf.span_id))
        await conn.execute(update(sessions).values(trace_count=sessions.c.trace_count + 5, cost_usd=-1.0))
        await conn.execute(
            insert(sessions).values(
                session_id="orphan",
                first_seen=T0,
                last_seen=T0,
                trace_count=1,
                error_count=0,
                input_tokens=0,
                output_tokens=0,
                total_tokens=0,
                cost_usd=0.0,
            )
        )

    rebuilt = await rebuild_summaries(migrated_engine)

    remaining = [s for s in span_records if s.trace_id != dropped and s is not leaf]
    expected = {trace_id: expected_trace(group) for trace_id, group in group_by_trace(remaining).items()}
    trace_rows = await stored(migrated_engine, traces, "trace_id")
    # A trace whose spans are all gone keeps its last summary: nothing is left to recompute it from.
    assert set(trace_rows) == {*expected, dropped}
    for trace_id, row in expected.items():
        assert_rows_match(trace_rows[trace_id], row)
    session_rows = await stored(migrated_engine, sessions, "session_id")
    wanted = expected_sessions([*expected.values(), trace_rows[dropped]])
    assert set(session_rows) == set(wanted)  # the orphan row is gone
    for session_id, row in session_rows.items():
        assert_rows_match(row, wanted[session_id])
    assert rebuilt.traces == len(expected)
    assert rebuilt.sessions == len(wanted)
