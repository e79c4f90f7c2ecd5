"""A worker's memory bounds: `database.sqlite_memory_mib` (SQLite's soft heap limit, every
connection of the process together) and `query.preload_parquet` (on by default)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import text

from observatory_api.settings import ConfigError, DatabaseSettings, load_settings
from tests.integration.ingest.helpers import ingest_client, stored_spans
from tests.integration.ingest.payloads import encoded, new_trace_id, span, trace_request

REPO_CONFIG = Path(__file__).resolve().parents[2] / "api-config.yml"
MIB = 1024 * 1024

# A fresh interpreter (the limit is process-wide): four pooled read connections of the real
# engine each read a 24 MB table (~64 MiB cache each by default), then SQLite's own count of the
# memory it holds.
READ_EVERYTHING = """
import asyncio, ctypes, sqlite3, sys, _sqlite3
from sqlalchemy import text
from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings

path = sys.argv[1]
with sqlite3.connect(path) as db:
    db.execute("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body TEXT)")
    if not db.execute("SELECT count(*) FROM filler").fetchone()[0]:
        db.executemany("INSERT INTO filler (body) VALUES (?)", (("x" * 1000,) for _ in range(24_000)))

async def read(engine):
    async with engine.connect() as connection:
        await connection.execute(text("SELECT sum(length(body)) FROM filler"))
        await asyncio.sleep(0.2)  # all four held at once: four connections, four caches

async def main():
    database = DatabaseSettings(sqlite_path=path, sqlite_memory_mib=int(sys.argv[2]))
    engine = create_engine(database, database_url(database), readonly=True)
    await asyncio.gather(*(read(engine) for _ in range(4)))
    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    used.restype = ctypes.c_int64
    print(used())
    await engine.dispose()

asyncio.run(main())
"""


def sqlite_memory_after_reading(path: Path, limit_mib: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", READ_EVERYTHING, str(path), str(limit_mib)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_sqlite_memory_of_a_worker_stays_under_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    bounded = sqlite_memory_after_reading(path, 8)
    roomy = sqlite_memory_after_reading(path, 1024)
    # Without the bound each connection keeps what it read (~24 MiB each, ~96 in all); with it,
    # the four together stay near the limit (soft: SQLite stops growing its caches once over it).
    assert roomy > 80 * MIB, roomy
    assert bounded < 10 * MIB, bounded


async def test_ingest_and_reads_work_under_a_small_sqlite_limit(migrated_database: DatabaseSettings) -> None:
    # PostgreSQL ignores the setting; SQLite's read and ingest connections both carry it.
    database = msgspec.structs.replace(migrated_database, sqlite_memory_mib=2)
    trace_id = new_trace_id()
    async with ingest_client(database) as (client, headers):
        body, content_type = encoded(trace_request([span(trace_id, index) for index in range(50)]), "protobuf")
        response = await client.post("/v1/traces", content=body, headers={**headers, **content_type})
        assert response.status_code == 200, response.text
        resources: Any = client.app.state.resources
        if database.url is None:
            for engine in (resources.read_engine, resources.ingest.engine):
                async with engine.connect() as connection:
                    limit = (await connection.execute(text("PRAGMA soft_heap_limit"))).scalar_one()
                assert limit == 2 * MIB
    assert len(await stored_spans(database, trace_id.hex())) == 50


def test_defaults_and_environment_overrides() -> None:
    settings = load_settings(REPO_CONFIG, environ={})
    assert settings.database.sqlite_memory_mib == 64
    assert settings.query.preload_parquet is True
    settings = load_settings(REPO_CONFIG, environ={"DB_SQLITE_MEMORY_MIB": "16", "QUERY_PRELOAD_PARQUET": "false"})
    assert settings.database.sqlite_memory_mib == 16
    assert settings.query.preload_parquet is False


def test_a_limit_that_is_not_positive_stops_start_up_naming_it() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(REPO_CONFIG, environ={"DB_SQLITE_MEMORY_MIB": "0"})
    assert refused.value.key == "database.sqlite_memory_mib"
