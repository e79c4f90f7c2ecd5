"""A real streaming replica of the test PostgreSQL for the whole session (tests/replica.py), and a
small seeded database that both serve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio

from observatory_api.db.engine import create_engine, database_url
from observatory_api.demo.seed import seed_demo
from observatory_api.settings import DatabaseSettings
from tests.conftest import _pg_url, scratch_database
from tests.replica import StreamingReplica, streaming_replica

SEED_END = datetime(2026, 11, 20, tzinfo=UTC)


@pytest_asyncio.fixture(scope="session")
async def replica() -> AsyncIterator[StreamingReplica]:
    async with streaming_replica() as running:
        yield running


@pytest_asyncio.fixture
async def standby(replica: StreamingReplica) -> StreamingReplica:
    """The session's replica running and replaying, whatever the previous test left."""
    if not replica.is_running():
        replica.start()
    await replica.resume_replay()
    await replica.caught_up()
    return replica


@pytest_asyncio.fixture
async def replicated_database(pg_template: str, standby: StreamingReplica) -> AsyncIterator[str]:
    """A migrated database with a few demo traces, written on the primary and replayed by the replica."""
    async with scratch_database(pg_template, label="replica") as name:
        owner = DatabaseSettings(url=_pg_url(name))
        engine = create_engine(owner, database_url(owner))
        try:
            await seed_demo(engine, traces=5, seed=3, end=SEED_END, days=1)
        finally:
            await engine.dispose()
        await standby.caught_up()
        yield name
