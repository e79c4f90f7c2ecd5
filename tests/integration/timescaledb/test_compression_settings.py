"""How `spans` and `logs` are compressed (0001, then 0012), and 0012 going down and up again."""

from __future__ import annotations

import asyncpg

from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings
from tests.conftest import _pg_url, run_migration, scratch_database

SETTINGS = (
    "SELECT hypertable::text, segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings "
    "WHERE hypertable::text IN ('spans', 'logs') ORDER BY 1"
)


async def _settings(url: str) -> list[tuple[str, str | None, str]]:
    conn = await asyncpg.connect(url)
    try:
        return [(r["hypertable"], r["segmentby"], r["orderby"]) for r in await conn.fetch(SETTINGS)]
    finally:
        await conn.close()


async def test_spans_compress_in_one_stream_and_0012_goes_down_and_up(pg_template: str) -> None:
    async with scratch_database(pg_template, label="compression") as name:
        url = _pg_url(name)
        one_stream = [("logs", "service_name", '"time" DESC'), ("spans", "", "start_time DESC")]
        assert await _settings(url) == one_stream
        database = DatabaseSettings(url=url)
        engine = create_engine(database, database_url(database))
        try:
            await run_migration(engine, database, ("downgrade", "0011"))
            assert await _settings(url) == [
                ("logs", "service_name", '"time" DESC'),
                ("spans", "model", "start_time DESC"),
            ]
            await run_migration(engine, database, ("upgrade", "head"))
        finally:
            await engine.dispose()
        assert await _settings(url) == one_stream
