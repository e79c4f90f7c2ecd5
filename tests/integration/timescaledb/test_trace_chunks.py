"""Trace detail read from the trace's chunk (db.trace_chunks): the hypertable's answers, on
compressed chunks, chunks written to after compression, traces across two chunks, a chunk
compressed after its statement was prepared, and a chunk dropped after the catalogue was read."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest_asyncio
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.tables import traces
from observatory_api.db.trace_chunks import ChunkCatalogue
from observatory_api.settings import DatabaseSettings
from observatory_api.traces.repository import TRACE_LOG_MARGIN, TraceRepository
from tests.conftest import _pg_url, scratch_database
from tests.integration.timescaledb.conftest import Pair, seed


@pytest_asyncio.fixture
async def recorded(compressed_pair: Pair) -> AsyncIterator[tuple[AsyncEngine, list[str]]]:
    """The TimescaleDB database of the pair, and the trace lookups it runs (their FROM)."""
    engine = create_engine(compressed_pair.timescaledb, database_url(compressed_pair.timescaledb), readonly=True)
    yield engine, _recorded(engine)
    await engine.dispose()


def _recorded(engine: AsyncEngine) -> list[str]:
    """What the trace lookups of `engine` read from (the table after FROM), in order."""
    read: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        source = re.search(r"\bFROM\s+(\S+)", statement)
        if source is not None and "trace_id = " in statement and source.group(1) != "traces":
            read.append(source.group(1))

    return read


async def _traces(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = select(traces.c.trace_id, traces.c.start_time, traces.c.end_time).order_by(traces.c.trace_id)
        return list((await conn.execute(query)).all())


def _across_days(start: Any, end: Any, margin: timedelta) -> bool:
    return (start - margin).date() != (end + margin).date()


async def test_trace_detail_from_the_chunk_equals_the_hypertables(
    recorded: tuple[AsyncEngine, list[str]],
) -> None:
    engine, read = recorded
    by_chunk = TraceRepository(engine, chunks=ChunkCatalogue())
    by_hypertable = TraceRepository(engine)
    found = await _traces(engine)
    assert len(found) >= 250
    for trace_id, start, end in found:
        for allow_content in (True, False):
            read.clear()
            answer = await by_chunk.get_trace(trace_id, allow_content=allow_content)
            spans_from, logs_from = read
            expected = await by_hypertable.get_trace(trace_id, allow_content=allow_content)
            assert msgspec.json.encode(answer) == msgspec.json.encode(expected), trace_id
            # One chunk holds the range (daily chunks): read from it; else from the hypertable.
            assert (spans_from == "spans") == _across_days(start, end, timedelta(0)), (trace_id, spans_from)
            assert (logs_from == "logs") == _across_days(start, end, TRACE_LOG_MARGIN), (trace_id, logs_from)
    assert sum(_across_days(start, end, TRACE_LOG_MARGIN) for _, start, end in found) >= 5  # both paths ran


@pytest_asyncio.fixture
async def own_database(pg_template: str) -> AsyncIterator[DatabaseSettings]:
    """A few traces over 30 days on TimescaleDB, nothing compressed yet, for changing its chunks."""
    async with scratch_database(pg_template, label="chunks") as name:
        settings = DatabaseSettings(url=_pg_url(name))
        await seed(settings, traces=60, seed_value=23)
        yield settings


async def test_a_chunk_compressed_or_dropped_after_it_was_read_still_answers_right(
    own_database: DatabaseSettings,
) -> None:
    engine = create_engine(own_database, database_url(own_database), readonly=True)
    try:
        by_chunk = TraceRepository(engine, chunks=ChunkCatalogue(ttl_seconds=3600))
        by_hypertable = TraceRepository(engine)
        found = await _traces(engine)
        oldest = min(found, key=lambda row: row.start_time)
        newest = max(found, key=lambda row: row.start_time)

        async def same(trace_id: str) -> bytes:
            answer = msgspec.json.encode(await by_chunk.get_trace(trace_id, allow_content=True))
            assert answer == msgspec.json.encode(await by_hypertable.get_trace(trace_id, allow_content=True))
            return answer

        before = await same(oldest.trace_id)
        assert b'"spans":[]' not in before
        for _ in range(8):  # past the fifth execution: PostgreSQL keeps a generic plan of the chunk's statement
            await same(oldest.trace_id)
        async with engine.connect() as conn:
            compressed = (
                await conn.exec_driver_sql(
                    "SELECT compress_chunk(c) FROM show_chunks('spans', older_than => $1::timestamptz) c",
                    (oldest.start_time + timedelta(days=1),),
                )
            ).all()
        assert compressed
        assert await same(oldest.trace_id) == before  # the compressed chunk, read directly
        async with engine.connect() as conn:
            dropped = (
                await conn.exec_driver_sql(
                    "SELECT drop_chunks('spans', older_than => $1::timestamptz)",
                    (oldest.start_time + timedelta(days=1),),
                )
            ).all()
        assert dropped
        # The catalogue still names the dropped chunk: the hypertable answers (no spans left).
        read = _recorded(engine)
        after = await same(oldest.trace_id)
        assert b'"spans":[]' in after
        assert read[0].startswith('"_timescaledb_internal"."_hyper_') and read[1] == "spans", read
        await same(newest.trace_id)
    finally:
        await engine.dispose()


async def test_the_chunk_lookups_keep_a_generic_plan(compressed_pair: Pair) -> None:
    # What the chunk read is for: after five executions on a connection, PostgreSQL plans the
    # chunk's statement no more (a generic plan, cheap over one chunk). Read from the server's
    # counters of the session, not from timings.
    settings = compressed_pair.timescaledb
    engine = create_engine(settings, database_url(settings), readonly=True, pool_size=1, max_overflow=0)
    try:
        found = await _traces(engine)
        # Every chunk of the pair was compressed; the first trace whose spans and logs lie in one chunk each.
        oldest = next(
            row
            for row in sorted(found, key=lambda row: row.start_time)
            if not _across_days(row.start_time, row.end_time, TRACE_LOG_MARGIN)
        )
        repository = TraceRepository(engine, chunks=ChunkCatalogue())
        for _ in range(8):
            await repository.get_trace(oldest.trace_id, allow_content=True)
        async with engine.connect() as conn:
            plans = (
                await conn.exec_driver_sql(
                    "SELECT generic_plans FROM pg_prepared_statements WHERE statement LIKE '%_hyper_%trace_id =%'"
                    " AND statement NOT LIKE '%pg_prepared_statements%'"
                )
            ).all()
        assert len(plans) == 2 and all(row.generic_plans >= 3 for row in plans), plans  # spans, logs
    finally:
        await engine.dispose()


async def test_a_chunk_split_after_the_catalogue_was_read_falls_back_to_the_hypertable(
    own_database: DatabaseSettings,
) -> None:
    # split_chunk moves a chunk's later rows to a new chunk: the catalogue read before it still
    # names the old chunk for them. The chunk statement's guard sees the changed range.
    engine = create_engine(own_database, database_url(own_database), readonly=True)
    admin = create_engine(own_database, database_url(own_database))
    try:
        by_chunk = TraceRepository(engine, chunks=ChunkCatalogue(ttl_seconds=3600))
        by_hypertable = TraceRepository(engine)
        found = await _traces(engine)
        # A trace well inside its day, whose spans and logs each lie in one chunk.
        trace = next(
            row
            for row in sorted(found, key=lambda row: row.start_time)
            if not _across_days(row.start_time, row.end_time, TRACE_LOG_MARGIN) and row.start_time.hour >= 2
        )
        expected = msgspec.json.encode(await by_hypertable.get_trace(trace.trace_id, allow_content=True))
        read = _recorded(engine)
        for _ in range(8):  # warm: the chunk statements prepared, a generic plan kept
            assert msgspec.json.encode(await by_chunk.get_trace(trace.trace_id, allow_content=True)) == expected
        assert all(source.startswith('"_timescaledb_internal"') for source in read), read
        split_at = trace.start_time - TRACE_LOG_MARGIN - timedelta(minutes=1)  # the trace's rows move
        async with admin.connect() as conn:
            for hypertable in ("spans", "logs"):
                chunk = (
                    await conn.exec_driver_sql(
                        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
                        " WHERE hypertable_name = $1 AND range_start <= $2 AND range_end > $2",
                        (hypertable, trace.start_time),
                    )
                ).scalar_one()
                await conn.exec_driver_sql(
                    "CALL split_chunk($1::regclass, split_at => $2::timestamptz)", (chunk, split_at)
                )
            await conn.commit()
        read.clear()
        assert msgspec.json.encode(await by_chunk.get_trace(trace.trace_id, allow_content=True)) == expected
        # The spans' chunk statement failed its guard: the hypertable answered, the catalogue read again.
        assert read[1] == "spans", read
        assert msgspec.json.encode(await by_chunk.get_trace(trace.trace_id, allow_content=True)) == expected
    finally:
        await engine.dispose()
        await admin.dispose()
