"""The lifespan owns the external clients: database engines and Redis. It runs once per worker."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url, is_sqlite, readonly_url
from observatory_api.db.metric_sql import mark_timescaledb
from observatory_api.db.migrate import head_revision, upgrade
from observatory_api.db.replicas import ReadRouter, build_read_router
from observatory_api.ingest.export import decode_limits
from observatory_api.ingest.report import IngestWarnings
from observatory_api.ingest.warmup import warm_up
from observatory_api.metrics.continuous_aggregates import find_continuous_aggregates, mark_continuous_aggregates
from observatory_api.metrics.segment_cache import SegmentCache
from observatory_api.observability.replicas import forget_replica, publish_replica
from observatory_api.redis_client import open_redis
from observatory_api.settings import Settings
from observatory_api.storage import TelemetryWriter

logger = logging.getLogger("observatory_api.lifespan")


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    state = app.state
    owner_url = database_url(settings.database)
    if is_sqlite(owner_url):
        # The embedded default keeps itself at head, so one command on a fresh machine works.
        owner = create_engine(settings.database, owner_url)
        try:
            await upgrade(owner, settings.database)
        finally:
            await owner.dispose()
    state.read_engine = create_engine(settings.database, readonly_url(settings.database), readonly=True)
    state.schema_head = head_revision(settings.database)
    state.timescaledb = await _has_timescaledb(state.read_engine)
    mark_timescaledb(state.read_engine.dialect, state.timescaledb)
    # Metrics read TimescaleDB's continuous aggregates when it reports them, else the rollup tables.
    state.continuous_aggregates = await find_continuous_aggregates(state.read_engine, timescaledb=state.timescaledb)
    mark_continuous_aggregates(state.read_engine.dialect, state.continuous_aggregates)
    # REST and GraphQL reads go through the router (replicas when configured); keys, tokens and
    # the health of the schema keep `read_engine`, the primary.
    state.read_router = _read_router(
        settings, state.read_engine, timescaledb=state.timescaledb, aggregates=state.continuous_aggregates
    )
    # /ready and tracing use this client; the security store opens its own (security/setup.py).
    state.redis_connection = open_redis(settings.redis, timeout=settings.redis.socket_timeout_seconds)
    state.redis = state.redis_connection.client if state.redis_connection is not None else None
    state.write_engine = None
    # Closed rollup segments are kept between metric queries only where every write that could
    # change them is seen: this worker's own writer, reads on the primary (a replica may not yet
    # hold a write when it is invalidated). Other processes' late writes: `ttl_seconds` at most.
    state.metric_segments = SegmentCache() if settings.ingest_enabled and not settings.database.replica_urls else None
    if settings.ingest_enabled:
        # Ingest writes with the owner role (DATABASE_URL); the read path keeps its read-only role.
        state.write_engine = create_engine(settings.database, owner_url, application_name="observatory-ingest")
        mark_timescaledb(state.write_engine.dialect, state.timescaledb)
        mark_continuous_aggregates(state.write_engine.dialect, state.continuous_aggregates)
        state.ingest_writer = TelemetryWriter(
            state.write_engine,
            on_stored=state.metric_segments.invalidate if state.metric_segments is not None else None,
        )
        state.ingest_slots = asyncio.Semaphore(settings.ingest.max_concurrent_writes)
        state.ingest_warnings = IngestWarnings()
        if settings.ingest.warm_up:
            # Before the worker is ready: the first export must not pay for loading and preparing.
            warmup_seconds = await warm_up(
                state.write_engine, decode_limits(settings), connections=settings.ingest.max_concurrent_writes
            )
            logger.info("ingest warmed up", extra={"seconds": round(warmup_seconds, 3)})
    state.started_at = time.monotonic()
    # Everything built so far (modules, the app, table metadata) lives as long as the worker:
    # frozen out of the collector, full collections no longer walk it. They did while a query
    # built thousands of rows (a day by minute: p95 173-211 ms before, 125-133 ms after).
    gc.freeze()
    logger.info(
        "started",
        extra={
            "database": owner_url.get_backend_name(),
            "timescaledb": state.timescaledb,
            "continuous_aggregates": state.continuous_aggregates,
            "redis": bool(state.redis),
        },
    )
    try:
        async with state.read_router.running():
            yield
    finally:
        await state.read_router.dispose()
        for replica in state.read_router.replicas:
            forget_replica(replica)
        await state.read_engine.dispose()
        if state.write_engine is not None:
            await state.write_engine.dispose()
        if state.redis_connection is not None:
            await state.redis_connection.aclose()
        # Graceful shutdown reached its end: the pools are closed (tests/e2e/test_shutdown.py).
        logger.info("stopped: database pools and Redis client closed")


async def _has_timescaledb(engine: AsyncEngine) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"))
            return found.first() is not None
    except Exception:
        logger.warning("could not check for TimescaleDB; assuming plain PostgreSQL")
        return False


def _read_router(settings: Settings, primary: AsyncEngine, *, timescaledb: bool, aggregates: bool) -> ReadRouter:
    database = settings.database

    def make_engine(url: URL, *, pool_size: int | None = None, max_overflow: int | None = None) -> AsyncEngine:
        return create_engine(database, url, readonly=True, pool_size=pool_size, max_overflow=max_overflow)

    def configure(engine: AsyncEngine) -> None:
        mark_timescaledb(engine.dialect, timescaledb)
        mark_continuous_aggregates(engine.dialect, aggregates)

    return build_read_router(
        primary,
        [database_url(msgspec.structs.replace(database, url=url)) for url in database.replica_urls],
        make_engine,
        primary_url=readonly_url(database),
        max_lag_seconds=database.max_replica_lag_seconds,
        check_interval_seconds=database.replica_check_interval_seconds,
        on_change=publish_replica,
        configure=configure,
    )
