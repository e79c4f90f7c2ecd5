"""Concurrent callers of one TelemetryWriter (group commit) on real SQLite and PostgreSQL:
every span stored and counted once, summaries and rollups exact, a bad batch fails alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import sessions, spans, traces
from observatory_api.metrics.rollup_tables import ROLLUPS
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.integration.storage.test_context_inheritance import (
    EXPECTED,
    TREE,
    assert_rollups_follow_the_spans,
    contexts,
    tree_span,
)
from tests.integration.storage.test_writer import (
    assert_rows_match,
    count,
    demo_records,
    expected_sessions,
    expected_trace,
    group_by_trace,
    stored,
)


async def rollup_totals(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [int(await conn.scalar(select(func.sum(r.table.c.span_count))) or 0) for r in ROLLUPS]


async def assert_summaries_exact(engine: AsyncEngine, records: list[SpanRecord]) -> None:
    expected = {trace_id: expected_trace(group) for trace_id, group in group_by_trace(records).items()}
    trace_rows = await stored(engine, traces, "trace_id")
    assert set(trace_rows) == set(expected)
    for trace_id, row in trace_rows.items():
        assert_rows_match(row, expected[trace_id])
    session_rows = await stored(engine, sessions, "session_id")
    wanted_sessions = expected_sessions(list(expected.values()))
    assert set(session_rows) == set(wanted_sessions)
    for session_id, row in session_rows.items():
        assert_rows_match(row, wanted_sessions[session_id])


async def test_concurrent_overlapping_batches_are_stored_once(migrated_engine: AsyncEngine) -> None:
    records, _ = demo_records(traces_count=60)
    # Spans of one trace spread over several batches, and every batch sent twice (a retry
    # racing its original), all at once.
    batches = [records[i::7] for i in range(7)]
    writer = TelemetryWriter(migrated_engine)

    results = await asyncio.gather(*(writer.write_spans(batch) for batch in [*batches, *batches]))

    assert sum(results) == len(records)
    assert await count(migrated_engine, spans) == len(records)
    assert await rollup_totals(migrated_engine) == [len(records)] * len(ROLLUPS)
    await assert_summaries_exact(migrated_engine, records)


async def test_concurrent_writers_keep_summaries_exact(migrated_engine: AsyncEngine) -> None:
    # Two writers (as two server workers): the same traces and sessions, in different batches.
    records, _ = demo_records(traces_count=60, seed=3)
    writers = [TelemetryWriter(migrated_engine), TelemetryWriter(migrated_engine)]
    batches = [records[i::10] for i in range(10)]

    await asyncio.gather(*(writers[i % 2].write_spans(batch) for i, batch in enumerate(batches)))

    assert await count(migrated_engine, spans) == len(records)
    assert await rollup_totals(migrated_engine) == [len(records)] * len(ROLLUPS)
    await assert_summaries_exact(migrated_engine, records)


async def test_a_failing_batch_does_not_take_the_others_down(migrated_engine: AsyncEngine) -> None:
    records, _ = demo_records(traces_count=40, seed=5)
    good = [records[i::4] for i in range(3)]
    broken_batch = records[3::4]
    broken = [*broken_batch[:-1], msgspec.structs.replace(broken_batch[-1], name=None)]  # violates NOT NULL
    writer = TelemetryWriter(migrated_engine)

    results = await asyncio.gather(
        *(writer.write_spans(b) for b in [good[0], broken, good[1], good[2]]), return_exceptions=True
    )

    assert isinstance(results[1], IntegrityError)
    assert [results[0], results[2], results[3]] == [len(b) for b in good]
    stored_good = [s for batch in good for s in batch]
    assert await count(migrated_engine, spans) == len(stored_good)
    assert await rollup_totals(migrated_engine) == [len(stored_good)] * len(ROLLUPS)
    await assert_summaries_exact(migrated_engine, stored_good)
    # Fixed and sent again, the rest goes in.
    assert await writer.write_spans(broken_batch) == len(broken_batch)
    await assert_summaries_exact(migrated_engine, records)


@pytest.mark.parametrize("group_max_spans", [1, 10_000])
async def test_group_size_does_not_change_what_is_stored(migrated_engine: AsyncEngine, group_max_spans: int) -> None:
    records, _ = demo_records(traces_count=20, seed=8)
    writer = TelemetryWriter(migrated_engine, group_max_spans=group_max_spans)

    await asyncio.gather(*(writer.write_spans(records[i::5]) for i in range(5)))

    assert await count(migrated_engine, spans) == len(records)
    await assert_summaries_exact(migrated_engine, records)


async def test_writers_that_inherit_an_environment_beside_writers_that_do_not(
    migrated_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers on the same traces at once. In half of the traces the root naming the
    environment arrives after its children (the writer that inherits it writes its group again,
    all under the traces' locks), the other traces name everything; one span id also arrives at
    two start times. Every write succeeds (no deadlock between the two lock orders), each span
    is stored once, and the rollups count every span under the environment it ends with."""
    records, _ = demo_records(traces_count=30, seed=13)
    twin = msgspec.structs.replace(records[5], start_time=records[5].start_time + timedelta(milliseconds=1))
    trees = [f"{index:032x}" for index in range(8)]
    # Children first, the roots last, spread over the batches of both writers.
    order = ["d", "c", "b", "a", "r"]
    batches = [
        [*records[i::6], *(tree_span(order[min(i, 4)], trace_id) for trace_id in trees[i % 2 :: 2])] for i in range(6)
    ]
    # The twin goes to the other writer than its original (batch 5): one of them finds the other
    # under the locks, and its group is written again (also where no rollups are written).
    batches.append([*(tree_span(name, trace_id) for trace_id in trees for name in TREE), twin])
    writers = [TelemetryWriter(migrated_engine), TelemetryWriter(migrated_engine)]
    rewritten: list[int] = []
    under_locks = TelemetryWriter._write_under_locks

    async def counted(self: TelemetryWriter, group: Any) -> Any:
        rewritten.append(len(group.keys))
        return await under_locks(self, group)

    monkeypatch.setattr(TelemetryWriter, "_write_under_locks", counted)

    results = await asyncio.gather(*(writers[i % 2].store_spans(batch) for i, batch in enumerate(batches)))

    assert sum(result.stored for result in results) == len(records) + len(trees) * len(TREE)
    assert [len(result.conflicts) for result in results].count(1) == 1  # the twin, or its original
    assert await count(migrated_engine, spans) == len(records) + len(trees) * len(TREE)
    found = await contexts(migrated_engine)
    assert {(trace_id, name): found[(trace_id, name)] for trace_id in trees for name in TREE} == {
        (trace_id, name): expected for trace_id in trees for name, expected in EXPECTED.items()
    }
    await assert_rollups_follow_the_spans(migrated_engine)
    assert rewritten  # some group was written again, all under the locks
