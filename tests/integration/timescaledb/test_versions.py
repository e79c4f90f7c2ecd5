"""The TimescaleDB pass runs on the versions compose.yml deploys (tests/timescaledb.py)."""

from __future__ import annotations

import asyncpg

from tests.conftest import ADMIN_URL
from tests.timescaledb import TESTED_POSTGRESQL_MAJOR, TESTED_TIMESCALEDB


async def test_the_server_runs_the_tested_versions() -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        available = await conn.fetchval(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
        )
        major = int(await conn.fetchval("SHOW server_version_num")) // 10_000
    finally:
        await conn.close()
    assert (available, major) == (TESTED_TIMESCALEDB, TESTED_POSTGRESQL_MAJOR)
