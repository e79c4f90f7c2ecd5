"""The lifespan owns the external clients: database engines and Redis. It runs once per worker,
before the other lifespans, and hands what it opened to them and to the handlers as one
`Resources` (resources.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

import msgspec
from litestar import Litestar
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.background import background_task
from observatory_api.db.capabilities import DatabaseCapabilities, detect_capabilities
from observatory_api.db.engine import create_engine, database_url, readonly_url, upgrade_if_embedded
from observatory_api.db.replicas import ReadRouter, build_read_router
from observatory_api.db.revisions import head_revision
from observatory_api.exports.parquet import preload as preload_parquet
from observatory_api.ingest.export import decode_limits
from observatory_api.ingest.report import IngestWarnings
from observatory_api.ingest.resources import IngestResources
from observatory_api.ingest.warmup import warm_up
from observatory_api.metrics.continuous_aggregates import AGGREGATE_VIEWS
from observatory_api.metrics.segment_cache import DEFAULT_RECENT_SECONDS, SegmentCache
from observatory_api.metrics.segment_sync import SegmentPublisher, SegmentSubscriber, channel_name, new_origin
from observatory_api.observability.replicas import forget_replica, publish_replica
from observatory_api.redis_client import PRIMARY_CHECK_SECONDS, open_worker_redis, worker_timeout
from observatory_api.resources import Resources
from observatory_api.settings import Settings
from observatory_api.storage import TelemetryWriter

logger = logging.getLogger("observatory_api.lifespan")
# How long a stopping worker waits for its last invalidations to reach Redis.
SHUTDOWN_FLUSH_SECONDS = 2.0


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    owner_url = database_url(settings.database)
    await upgrade_if_embedded(settings.database)
    read_engine = create_engine(settings.database, readonly_url(settings.database), readonly=True)
    # Once, before the first query compiles: TimescaleDB, and its continuous aggregates (the
    # metrics read them when it reports them all, else the rollup tables).
    capabilities = await detect_capabilities(read_engine, continuous_aggregates=AGGREGATE_VIEWS)
    # The one client of this worker: rate limits, caches, /ready, tracing and the metric cache's
    # invalidations share it.
    redis = open_worker_redis(settings.redis)
    segments = _segment_cache(settings, shared=redis is not None)
    # This worker's name on the metric cache's channel (it skips its own invalidations): made here,
    # never at import, which the forked workers share.
    origin = new_origin()
    publisher = None
    if redis is not None and settings.ingest_enabled:
        publisher = SegmentPublisher(redis.client, channel_name(settings.redis.key_prefix), origin)
    resources = Resources(
        read_engine=read_engine,
        # REST and GraphQL reads go through the router (replicas when configured); keys, tokens
        # and the health of the schema keep `read_engine`, the primary.
        read_router=_read_router(settings, read_engine),
        capabilities=capabilities,
        schema_head=head_revision(),
        redis=redis,
        ingest=await _open_ingest(settings, owner_url, capabilities, _on_stored(segments, publisher))
        if settings.ingest_enabled
        else None,
        metric_segments=segments,
        started_at=time.monotonic(),
    )
    app.state.resources = resources
    if settings.query.preload_parquet and preload_parquet():
        logger.debug("pyarrow loaded for Parquet exports")
    # Everything built so far (modules, the app, table metadata) lives as long as the worker:
    # frozen out of the collector, full collections no longer walk it. They did while a query
    # built thousands of rows (a day by minute: p95 173-211 ms before, 125-133 ms after).
    gc.freeze()
    logger.info(
        "started",
        extra={
            "database": owner_url.get_backend_name(),
            "timescaledb": capabilities.timescaledb,
            "continuous_aggregates": capabilities.continuous_aggregates,
            "redis": resources.redis is not None,
            "metric_segment_cache": resources.metric_segments is not None,
        },
    )
    try:
        async with AsyncExitStack() as running:
            await running.enter_async_context(resources.read_router.running())
            redis = resources.redis
            if redis is not None and redis.via_sentinel:
                # Off the old primary as soon as the Sentinels name a new one (redis_client.check_primary).
                follow = redis.follow_primary(PRIMARY_CHECK_SECONDS, worker_timeout(settings.redis))
                await running.enter_async_context(background_task(follow, name="observatory-redis-primary"))
            if redis is not None and segments is not None:
                channel = channel_name(settings.redis.key_prefix)
                subscriber = SegmentSubscriber(
                    redis.client,
                    channel,
                    origin,
                    segments,
                    resubscribed=publisher.everything if publisher is not None else lambda: None,
                )
                await running.enter_async_context(background_task(subscriber.run(), name="observatory-metric-cache"))
            if publisher is not None:
                await running.enter_async_context(
                    background_task(publisher.run(), name="observatory-metric-cache-publisher")
                )
            yield
            if publisher is not None and not await publisher.flush(SHUTDOWN_FLUSH_SECONDS):
                logger.warning("metric cache invalidations left unpublished at shutdown")
    finally:
        await resources.read_router.dispose()
        for replica in resources.read_router.replicas:
            forget_replica(replica)
        await read_engine.dispose()
        if resources.write_engine is not None:
            await resources.write_engine.dispose()
        if resources.redis is not None:
            await resources.redis.aclose()
        # Graceful shutdown reached its end: the pools are closed (tests/e2e/test_shutdown.py).
        logger.info("stopped: database pools and Redis client closed")


def _segment_cache(settings: Settings, *, shared: bool) -> SegmentCache | None:
    """Closed rollup segments are kept between metric queries only where every write that could
    change them is heard of: with Redis, every writer publishes what it touched and every worker
    subscribes (metrics/segment_sync.py; suspended until subscribed); without it, only a single
    worker that does all the writing itself and reads the primary. Writes by other processes
    without Redis (the `seed` command, another instance): `ttl_seconds` at most."""
    database = settings.database
    # Reads from replicas are kept only once the replica holds what was invalidated: remember
    # invalidations well past the lag a replica in the rotation may have.
    recent = max(DEFAULT_RECENT_SECONDS, 2 * database.max_replica_lag_seconds + database.replica_check_interval_seconds)
    if shared:
        return SegmentCache(serving=False, recent_seconds=recent)
    if settings.ingest_enabled and not database.replica_urls and settings.server.workers == 1:
        return SegmentCache()
    return None


def _on_stored(
    segments: SegmentCache | None, publisher: SegmentPublisher | None
) -> Callable[[datetime, datetime], None] | None:
    """What the writer calls after each commit: its own cache at once, the others through Redis."""
    if publisher is None:
        return segments.invalidate if segments is not None else None

    def stored(first: datetime, last: datetime) -> None:
        if segments is not None:
            segments.invalidate(first, last)
        publisher.stored(first, last)

    return stored


async def _open_ingest(
    settings: Settings,
    owner_url: URL,
    capabilities: DatabaseCapabilities,
    on_stored: Callable[[datetime, datetime], None] | None,
) -> IngestResources:
    # Ingest writes with the owner role (DATABASE_URL); the read path keeps its read-only role.
    engine = create_engine(settings.database, owner_url, application_name="observatory-ingest")
    if settings.ingest.warm_up:
        # Before the worker is ready: the first export must not pay for loading and preparing.
        warmup_seconds = await warm_up(
            engine, capabilities, decode_limits(settings), connections=settings.ingest.max_concurrent_writes
        )
        logger.info("ingest warmed up", extra={"seconds": round(warmup_seconds, 3)})
    return IngestResources(
        engine=engine,
        writer=TelemetryWriter(engine, capabilities=capabilities, on_stored=on_stored),
        slots=asyncio.Semaphore(settings.ingest.max_concurrent_writes),
        warnings=IngestWarnings(),
    )


def _read_router(settings: Settings, primary: AsyncEngine) -> ReadRouter:
    database = settings.database

    def make_engine(url: URL, *, pool_size: int | None = None, max_overflow: int | None = None) -> AsyncEngine:
        return create_engine(database, url, readonly=True, pool_size=pool_size, max_overflow=max_overflow)

    return build_read_router(
        primary,
        [database_url(msgspec.structs.replace(database, url=url)) for url in database.replica_urls],
        make_engine,
        primary_url=readonly_url(database),
        max_lag_seconds=database.max_replica_lag_seconds,
        check_interval_seconds=database.replica_check_interval_seconds,
        on_change=publish_replica,
    )
