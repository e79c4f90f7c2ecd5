"""Graceful shutdown: SIGTERM to `serve` lets the request in progress finish, then closes the pools.

The slow request is made deterministic with a lock: the test holds an exclusive lock on `traces`,
so `GET /api/v1/traces` waits inside PostgreSQL until the test releases it, after the signal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.conftest import _pg_url, scratch_database
from tests.e2e.server import AUTH, RunningServer, start_server

pytestmark = pytest.mark.e2e
APPLICATION_NAME = "observatory-api"


@pytest_asyncio.fixture
async def database(pg_template: str) -> AsyncIterator[str]:
    async with scratch_database(pg_template) as name:
        yield name


async def _until(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def test_sigterm_finishes_the_request_in_flight_and_closes_the_pool(database: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": _pg_url(database), "LOG_FORMAT": "json"}
    with start_server(tmp_path, workers=1, env=env) as server:
        await _sigterm_during_a_request(server, database)


async def _sigterm_during_a_request(server: RunningServer, database: str) -> None:
    process, base, log_path = server.process, server.base, server.log
    owner = await asyncpg.connect(_pg_url(database))
    try:
        transaction = owner.transaction()
        await transaction.start()
        await owner.execute("LOCK TABLE traces IN ACCESS EXCLUSIVE MODE")
        slow = asyncio.create_task(asyncio.to_thread(httpx.get, f"{base}/api/v1/traces", headers=AUTH, timeout=30))

        async def waiting_on_the_lock() -> bool:
            waiting = await owner.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 "
                "AND wait_event_type = 'Lock'",
                database,
                APPLICATION_NAME,
            )
            return waiting == 1

        await _until(waiting_on_the_lock, "the request to wait on the lock")
        # What an orchestrator does: SIGTERM to the main process (Docker sends it to PID 1).
        os.kill(process.pid, signal.SIGTERM)

        async def shutting_down() -> bool:
            return "Shutting down granian" in log_path.read_text()

        await _until(shutting_down, "granian to start shutting down")
        assert not slow.done(), "the request ended before the lock was released"
        await transaction.rollback()

        response = await slow
        assert response.status_code == 200, response.text
        assert response.json()["data"] == []
        assert await asyncio.to_thread(process.wait, 30) == 0

        async def pool_closed() -> bool:
            open_connections = await owner.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
                database,
                APPLICATION_NAME,
            )
            return open_connections == 0

        await _until(pool_closed, "the API's connections to close", timeout=10)
        # The lifespan ran to its end (engines disposed, Redis closed), not just the process died.
        assert "stopped: database pools and Redis client closed" in log_path.read_text()
    finally:
        await owner.close()
