"""The writer's own ANALYZE (PostgreSQL): after a first stretch on a fresh table, never after a
first few spans into a table that is already large."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.write_sql import estimated_rows
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import TelemetryWriter
from tests.conftest import _pg_url, scratch_database
from tests.integration.storage.test_writer import demo_records
from tests.timescaledb import ON_TIMESCALEDB


async def estimated_spans(database: str) -> float:
    # ANALYZE sets reltuples in the same transaction; -1 means never analysed. On TimescaleDB the
    # rows are in the chunks, which inherit from `spans` (the parent stays empty).
    connection = await asyncpg.connect(_pg_url(database))
    try:
        return float(
            await connection.fetchval(
                "SELECT CASE WHEN bool_and(reltuples < 0) THEN -1 ELSE sum(greatest(reltuples, 0)) END "
                "FROM pg_class WHERE oid = 'spans'::regclass "
                "OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'spans'::regclass)"
            )
        )
    finally:
        await connection.close()


async def test_analyze_follows_the_table_it_found(pg_template: str) -> None:
    records, _ = demo_records(traces_count=120, seed=3)
    first, second, third = records[:100], records[100:150], records[150:]
    assert len(third) > 100
    async with scratch_database(pg_template, label="analyze") as name:
        admin = await asyncpg.connect(_pg_url(name))
        await admin.execute("ALTER TABLE spans SET (autovacuum_enabled = false)")  # only the writer analyses
        await admin.close()
        settings = DatabaseSettings(url=_pg_url(name))
        engine: AsyncEngine = create_engine(settings, database_url(settings))
        try:
            assert await estimated_spans(name) == -1
            await TelemetryWriter(engine, first_analyze=80).write_spans(first)
            assert await estimated_spans(name) == len(first)  # fresh table: analysed after 80

            # A new writer (a restarted server) finds 100 spans: 50 more are no reason to ANALYZE...
            restarted = TelemetryWriter(engine, first_analyze=20)
            await restarted.write_spans(second)
            assert await estimated_spans(name) == len(first)
            # ...as many again as the table held are.
            await restarted.write_spans(third)
            assert await estimated_spans(name) == len(records)
        finally:
            await engine.dispose()


async def test_the_estimate_counts_the_rows_of_inheriting_tables(pg_template: str) -> None:
    # A TimescaleDB hypertable keeps its rows in chunks that inherit from it, the parent empty:
    # on TimescaleDB the real chunks, on plain PostgreSQL emulated with a plain inheriting table.
    records, _ = demo_records(traces_count=20, seed=4)
    async with scratch_database(pg_template, label="chunks") as name:
        settings = DatabaseSettings(url=_pg_url(name))
        engine = create_engine(settings, database_url(settings))
        try:
            await TelemetryWriter(engine).write_spans(records)
            admin = await asyncpg.connect(_pg_url(name))
            try:
                if ON_TIMESCALEDB:
                    assert await admin.fetchval("SELECT count(*) FROM show_chunks('spans')") > 1
                    assert await admin.fetchval("SELECT count(*) FROM ONLY spans") == 0
                    await admin.execute("ANALYZE spans")
                else:
                    await admin.execute("CREATE TABLE spans_chunk_1 () INHERITS (spans)")
                    await admin.execute("INSERT INTO spans_chunk_1 SELECT * FROM ONLY spans")
                    await admin.execute("DELETE FROM ONLY spans")
                    await admin.execute("ANALYZE spans; ANALYZE spans_chunk_1")
            finally:
                await admin.close()
            async with engine.connect() as conn:
                assert await estimated_rows(conn, "spans") == len(records)
        finally:
            await engine.dispose()


async def test_a_failed_analyze_does_not_fail_the_committed_write(
    migrated_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(*_: object) -> None:  # fault injection: ANALYZE runs after the commit
        raise RuntimeError("ANALYZE failed")

    monkeypatch.setattr("observatory_api.storage.writer.analyze_tables", failing)
    records, _ = demo_records(traces_count=10, seed=6)
    with caplog.at_level(logging.WARNING, logger="observatory_api.storage.writer"):
        assert await TelemetryWriter(migrated_engine, first_analyze=1).write_spans(records) == len(records)
    assert "ANALYZE after a write failed" in caplog.text
