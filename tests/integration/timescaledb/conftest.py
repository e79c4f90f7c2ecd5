"""The same data on TimescaleDB (most chunks compressed, then written to again) and on plain
PostgreSQL, for comparing their answers. Runs only in the TimescaleDB pass (tests/timescaledb.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.demo.seed import seed_demo
from observatory_api.settings import DatabaseSettings, RateLimitSettings
from tests.conftest import PLAIN_POSTGRES_URL, RUN_ID, _pg_url, auth_headers, make_settings, scratch_database
from tests.dataset import DATASET_END

TRACES, LATE_TRACES = 240, 30


@dataclass(frozen=True)
class Pair:
    timescaledb: DatabaseSettings
    plain: DatabaseSettings
    compressed_chunks: int


def plain_url(name: str) -> str:
    return make_url(PLAIN_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def plain_database() -> AsyncIterator[DatabaseSettings]:
    """A new, migrated database on the plain PostgreSQL server, dropped on exit."""
    name = f"observatory_test_{RUN_ID}_plain{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PLAIN_POSTGRES_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = DatabaseSettings(url=plain_url(name))
        engine = create_engine(settings, database_url(settings))
        await upgrade(engine, settings)
        await engine.dispose()
        yield settings
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def seed(settings: DatabaseSettings, *, traces: int, seed_value: int) -> None:
    engine = create_engine(settings, database_url(settings))
    try:
        await seed_demo(engine, traces=traces, seed=seed_value, end=DATASET_END, days=30)
    finally:
        await engine.dispose()


async def compress_all(url: str) -> int:
    """Compress every chunk of `spans` and `logs`; the number compressed."""
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT compress_chunk(c, if_not_compressed => true) FROM "
                "(SELECT show_chunks('spans') AS c UNION ALL SELECT show_chunks('logs')) AS chunks) AS done"
            )
        )
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="package")
async def compressed_pair(pg_template: str) -> AsyncIterator[Pair]:
    """The same traces on both servers: on TimescaleDB every chunk compressed, then more traces
    written into those compressed chunks (the case that was 17x slower), ANALYZE never run."""
    async with scratch_database(pg_template, label="compressed") as name, plain_database() as plain:
        timescaledb = DatabaseSettings(url=_pg_url(name))
        for settings in (timescaledb, plain):
            await seed(settings, traces=TRACES, seed_value=21)
        compressed = await compress_all(_pg_url(name))
        for settings in (timescaledb, plain):
            await seed(settings, traces=LATE_TRACES, seed_value=22)
        yield Pair(timescaledb=timescaledb, plain=plain, compressed_chunks=compressed)


@pytest.fixture(scope="package")
def clients(compressed_pair: Pair) -> Iterator[dict[str, TestClient]]:
    """A developer's client of each server of `compressed_pair` (rate limits out of the way)."""
    roles = {"admin": 1_000_000, "developer": 1_000_000, "viewer": 1_000_000}
    opened: dict[str, TestClient] = {}
    try:
        for name, database in (("timescaledb", compressed_pair.timescaledb), ("plain", compressed_pair.plain)):
            settings = make_settings(database, rate_limit=RateLimitSettings(roles=roles))
            client = TestClient(create_app(settings), raise_server_exceptions=False)
            opened[name] = client.__enter__()
            opened[name].headers.update(auth_headers(settings, "developer"))
        yield opened
    finally:
        for client in opened.values():
            client.__exit__(None, None, None)
