"""`metric_segment_cache_serving`: whether this worker's metric segment cache answers queries.

The cache (metrics/segment_cache.py) suspends itself, serving and storing nothing, while its Redis
subscription to other writers' invalidations is not known to be up (metrics/segment_sync.py); metric
queries then read every segment and get slower, with nothing else to show why. Sampled, not
pushed: the cache only exposes its state, and a gauge is scraped every few seconds anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from observatory_api.core.background import background_task
from observatory_api.observability import metrics

SAMPLE_SECONDS = 1.0


class CacheState(Protocol):
    @property
    def serving(self) -> bool: ...


def sample_segment_cache(cache: CacheState | None) -> None:
    metrics.metric_segment_cache_serving.set(1 if cache is not None and cache.serving else 0)


@contextlib.asynccontextmanager
async def segment_cache_sampler(cache: CacheState | None, interval: float = SAMPLE_SECONDS) -> AsyncIterator[None]:
    """Set the gauge now and every `interval` seconds while the app runs (0 without a cache)."""
    sample_segment_cache(cache)
    if cache is None:
        yield
        return

    async def run() -> None:
        while True:
            await asyncio.sleep(interval)
            sample_segment_cache(cache)

    try:
        async with background_task(run(), name="observatory-metric-cache-sampler"):
            yield
    finally:
        metrics.metric_segment_cache_serving.set(0)
