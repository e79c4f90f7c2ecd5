"""Wiring of the observability pieces into an app: called by `create_app`, run by its lifespan."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Protocol

from litestar import Litestar
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.observability.db import pool_sampler
from observatory_api.observability.metric_cache import CacheState, segment_cache_sampler
from observatory_api.observability.metrics import record_build_info
from observatory_api.observability.metrics_server import MULTIPROC_ENV
from observatory_api.observability.middleware import install_middleware
from observatory_api.observability.sentry import setup_sentry
from observatory_api.observability.tracing import Tracing
from observatory_api.settings import Settings

# The roles of security/permissions.py; any other value is labelled `other`.
BUILT_IN_ROLES = frozenset({"admin", "developer", "viewer", "ingest"})


def install_observability(app: Litestar, settings: Settings, *, api_prefix: str) -> None:
    """Metrics and access-log middleware around the whole app, then tracing around that (so the
    middleware runs inside the server span and can name it), Sentry when configured."""
    record_build_info()
    setup_sentry(settings)
    tracing = Tracing(settings) if settings.observability.otlp_endpoint else None
    app.state.tracing = tracing
    install_middleware(
        app,
        api_prefix=api_prefix,
        known_roles=BUILT_IN_ROLES | frozenset(settings.rate_limit.roles),
        span_hooks=tracing,
    )
    if tracing is not None:
        app.asgi_handler = tracing.wrap(app.asgi_handler)


class ObservedResources(Protocol):
    """What observability reads of the lifespan's resources (`observatory_api.resources.Resources`)."""

    @property
    def read_engine(self) -> AsyncEngine: ...

    @property
    def redis_client(self) -> Redis | None: ...

    @property
    def metric_segments(self) -> CacheState | None: ...


@contextlib.asynccontextmanager
async def observability_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs after the main lifespan opened the engine and Redis, and ends before they close."""
    resources: ObservedResources = app.state.resources
    tracing: Tracing | None = app.state.get("tracing")
    if tracing is not None:
        # The worker's one Redis client: the rate limits' and caches' commands are traced too.
        tracing.instrument(resources.read_engine, resources.redis_client)
    try:
        async with pool_sampler(resources.read_engine), segment_cache_sampler(resources.metric_segments):
            yield
    finally:
        if tracing is not None:
            tracing.shutdown()
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            # This worker's live gauges (in flight, pool) stop counting; the launcher also reaps
            # the files of workers that died without getting here.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # unannotated upstream
