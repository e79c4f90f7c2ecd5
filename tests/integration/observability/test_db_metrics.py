"""Pool states and repository timings, against a real PostgreSQL pool."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from prometheus_client import REGISTRY

from observatory_api.db.engine import create_engine, database_url
from observatory_api.observability.db import pool_sampler, pool_states, timed
from observatory_api.settings import DatabaseSettings
from tests.conftest import ADMIN_URL


def gauge(state: str) -> float | None:
    return REGISTRY.get_sample_value("db_pool_connections", {"state": state})


async def test_pool_states_follow_the_connections_in_use() -> None:
    settings = DatabaseSettings(url=ADMIN_URL, pool_size=2, max_overflow=2)
    engine = create_engine(settings, database_url(settings))
    try:
        assert pool_states(engine) == {"checked_out": 0, "idle": 0, "overflow": 0}
        async with pool_sampler(engine, interval=0.01):
            async with AsyncExitStack() as stack:
                for _ in range(3):
                    await stack.enter_async_context(engine.connect())
                assert pool_states(engine) == {"checked_out": 3, "idle": 0, "overflow": 1}
                await asyncio.sleep(0.05)  # a few sampling rounds
                assert (gauge("checked_out"), gauge("idle"), gauge("overflow")) == (3, 0, 1)
            # Back in the pool: the base pool keeps its two, the overflow connection is closed.
            assert pool_states(engine) == {"checked_out": 0, "idle": 2, "overflow": 0}
            await asyncio.sleep(0.05)
            assert (gauge("checked_out"), gauge("idle"), gauge("overflow")) == (0, 2, 0)
    finally:
        await engine.dispose()


async def test_timed_records_successes_and_failures_under_a_fixed_name() -> None:
    @timed("test.operation")
    async def operation(fail: bool) -> str:
        await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError("query failed")
        return "done"

    def observed() -> tuple[float, float]:
        labels = {"operation": "test.operation"}
        return (
            REGISTRY.get_sample_value("db_query_duration_seconds_count", labels) or 0.0,
            REGISTRY.get_sample_value("db_query_duration_seconds_sum", labels) or 0.0,
        )

    count, total = observed()
    assert await operation(False) == "done"
    with pytest.raises(RuntimeError, match="query failed"):
        await operation(True)
    new_count, new_total = observed()
    assert new_count == count + 2
    assert new_total - total >= 0.02
