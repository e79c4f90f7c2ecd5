"""Trace detail on TimescaleDB with compressed chunks written to again: the same answers as plain
PostgreSQL, and every lookup of a trace's spans and logs reads only the chunks of its time range."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from litestar.testing import TestClient
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.tables import traces
from observatory_api.traces.repository import TraceRepository
from tests.integration.timescaledb.conftest import Pair

TRACE_FIELDS = """fragment T on Trace { id spanCount rootSpans { id name children { id name } }
  spans { id parentId name timestamp endTime tokenCount cost status attributes input output }
  logs { id timestamp severity body spanId } }"""
CHUNK_PREFIXES = ("_hyper_", "compress_hyper_")


@pytest_asyncio.fixture(scope="module")
async def trace_ids(compressed_pair: Pair) -> list[str]:
    engine = create_engine(compressed_pair.timescaledb, database_url(compressed_pair.timescaledb))
    try:
        async with engine.connect() as conn:
            return list(
                (await conn.scalars(select(traces.c.trace_id).order_by(traces.c.start_time, traces.c.trace_id))).all()
            )
    finally:
        await engine.dispose()


async def test_the_chunks_were_compressed_and_written_to_again(compressed_pair: Pair) -> None:
    assert compressed_pair.compressed_chunks >= 40  # 31 days of spans and of logs


def test_trace_detail_equals_plain_postgresql(clients: dict[str, TestClient], trace_ids: list[str]) -> None:
    assert len(trace_ids) >= 250
    with_logs = 0
    for trace_id in trace_ids:
        answers = [clients[name].get(f"/api/v1/traces/{trace_id}") for name in ("timescaledb", "plain")]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json() == answers[1].json(), trace_id
        with_logs += bool(answers[0].json()["logs"])
    assert with_logs > 50  # the logs lookup is exercised, not only empty answers


def test_graphql_traces_equal_plain_postgresql(clients: dict[str, TestClient], trace_ids: list[str]) -> None:
    # Several traces in one request: the loaders read their spans and logs in one batch.
    fields = " ".join(f't{i}: trace(id: "{trace_id}") {{ ...T }}' for i, trace_id in enumerate(trace_ids[::20][:12]))
    document = f"query {{ {fields} }} {TRACE_FIELDS}"
    answers = [clients[name].post("/graphql", json={"query": document}) for name in ("timescaledb", "plain")]
    bodies = [a.json() for a in answers]
    assert "errors" not in bodies[0], bodies[0].get("errors")
    assert bodies[0] == bodies[1]
    assert sum(len(t["logs"]) for t in bodies[0]["data"].values()) > 0


@pytest_asyncio.fixture
async def recording(compressed_pair: Pair) -> AsyncIterator[tuple[AsyncEngine, list[tuple[str, Any]]]]:
    engine = create_engine(compressed_pair.timescaledb, database_url(compressed_pair.timescaledb))
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("SELECT") and ("FROM spans" in statement or "FROM logs" in statement):
            statements.append((statement, parameters))

    yield engine, statements
    await engine.dispose()


async def test_by_trace_lookups_read_only_the_traces_chunks(
    recording: tuple[AsyncEngine, list[tuple[str, Any]]], trace_ids: list[str]
) -> None:
    engine, statements = recording
    repository = TraceRepository(engine)
    await repository.get_trace(trace_ids[0], allow_content=True)
    await repository.spans_of_traces(trace_ids[:3], allow_content=True)
    await repository.logs_of_traces(trace_ids[:3], allow_content=True)
    assert len(statements) == 4
    async with engine.connect() as conn:
        for statement, parameters in list(statements):
            plan = (
                await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) {statement}", parameters)
            ).scalar_one()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            read = _chunks_read(plan[0]["Plan"])
            # A trace lasts seconds: its chunk, maybe the next day's, and their compressed twins
            # (three traces started one after the other).
            assert 0 < len(read) <= 6, (statement, parameters, sorted(read))


def _chunks_read(node: dict[str, Any]) -> set[str]:
    """The chunks a plan executed a scan of (runtime exclusion leaves the others unexecuted)."""
    found = set()
    relation = node.get("Relation Name", "")
    if relation.startswith(CHUNK_PREFIXES) and node.get("Actual Loops", 0) > 0:
        found.add(relation)
    for child in node.get("Plans", []):
        found |= _chunks_read(child)
    return found


async def test_a_traces_spans_are_decompressed_from_one_batch_per_chunk(
    recording: tuple[AsyncEngine, list[tuple[str, Any]]],
) -> None:
    # Migration 0012: spans compress in one time-ordered stream per chunk. Segmented by model (as
    # 0001 had it), a trace that called a model read one whole batch per model and one for its
    # other spans, every column of each decompressed, for a handful of rows.
    engine, statements = recording
    async with engine.connect() as conn:
        mixed = (
            await conn.exec_driver_sql(
                "SELECT trace_id FROM spans GROUP BY trace_id HAVING count(DISTINCT coalesce(model, '')) >= 3 "
                "ORDER BY trace_id LIMIT 40"
            )
        ).scalars()
        mixed_ids = list(mixed)
    assert len(mixed_ids) >= 20
    repository = TraceRepository(engine)
    from_batches = 0
    for trace_id in mixed_ids:
        statements.clear()
        await repository.get_trace(trace_id, allow_content=True)
        spans_statement = [s for s in statements if "FROM spans" in s[0]]
        assert len(spans_statement) == 1
        statement, parameters = spans_statement[0]
        async with engine.connect() as conn:
            plan = (
                await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) {statement}", parameters)
            ).scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        batches, chunks = _batches_read(plan[0]["Plan"])
        assert batches <= chunks, (trace_id, batches, chunks)
        from_batches += batches > 0
    assert from_batches >= 10  # most of these traces were written before the chunks were compressed


def _batches_read(node: dict[str, Any]) -> tuple[int, int]:
    """(compressed batches decompressed, compressed chunks scanned) in a plan."""
    batches = chunks = 0
    if node.get("Relation Name", "").startswith("compress_hyper_") and node.get("Actual Loops", 0) > 0:
        batches, chunks = node["Actual Rows"] * node["Actual Loops"], 1
    for child in node.get("Plans", []):
        more, scanned = _batches_read(child)
        batches, chunks = batches + more, chunks + scanned
    return batches, chunks
