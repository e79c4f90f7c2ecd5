"""Database metrics: repository operation timings and connection pool states."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.background import background_task
from observatory_api.observability import metrics

P = ParamSpec("P")
R = TypeVar("R")
POOL_SAMPLE_SECONDS = 5.0
logger = logging.getLogger("observatory_api.observability")


def timed(operation: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Record an async repository method in `db_query_duration_seconds{operation=...}`.

    `operation` is a fixed name such as `traces.list`, never built from arguments. Failed calls
    are timed too: a slow timeout is exactly what the histogram should show.
    """

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        histogram = metrics.db_query_duration_seconds.labels(operation=operation)

        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - started)

        return wrapper

    return decorate


def pool_states(engine: AsyncEngine) -> dict[str, int] | None:
    """checked_out, idle and overflow (connections beyond pool_size, never negative) of a QueuePool.

    SQLAlchemy's `overflow()` starts at -pool_size; clamped at 0 it adds up across workers and
    "above 0" means a worker has used up its base pool. None for pools without these counters.
    """
    pool: Any = engine.sync_engine.pool
    if not all(hasattr(pool, name) for name in ("checkedout", "checkedin", "overflow")):
        return None
    return {"checked_out": pool.checkedout(), "idle": pool.checkedin(), "overflow": max(0, pool.overflow())}


def sample_pool(engine: AsyncEngine) -> None:
    states = pool_states(engine)
    if states is not None:
        for state, value in states.items():
            metrics.db_pool_connections.labels(state=state).set(value)


@contextlib.asynccontextmanager
async def pool_sampler(engine: AsyncEngine, interval: float = POOL_SAMPLE_SECONDS) -> AsyncIterator[None]:
    """Sample the pool now and then every `interval` seconds while the app runs.

    Periodic, not at scrape time: with several workers the scrape is answered by the launcher,
    which cannot see the workers' pools. Each worker writes its own gauges; the scrape sums them.
    """

    async def run() -> None:
        while True:
            try:
                sample_pool(engine)
            except Exception:
                logger.exception("could not sample the database pool")
            await asyncio.sleep(interval)

    try:
        async with background_task(run(), name="observatory-pool-sampler"):
            yield
    finally:
        for state in ("checked_out", "idle", "overflow"):
            metrics.db_pool_connections.labels(state=state).set(0)
