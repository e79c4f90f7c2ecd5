"""The writer's own ANALYZE (PostgreSQL): after a first stretch on a fresh table, never after a
first few spans into a table that is already large."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import TelemetryWriter
from tests.conftest import _pg_url, scratch_database
from tests.integration.storage.test_writer import demo_records


async def estimated_spans(database: str) -> float:
    # ANALYZE sets reltuples in the same transaction; -1 means never analysed.
    connection = await asyncpg.connect(_pg_url(database))
    try:
        return float(await connection.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'spans'"))
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
