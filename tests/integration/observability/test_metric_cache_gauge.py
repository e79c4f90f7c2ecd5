"""`metric_segment_cache_serving` follows the metric segment cache: 1 while it serves, 0 while it
is suspended because its Redis subscription is lost, 1 again once subscribed. A private
redis-server per test (tests/integration/security), so the shared Redis is never touched."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from observatory_api.observability.metric_cache import SAMPLE_SECONDS
from observatory_api.settings import DatabaseSettings
from tests.integration.metrics.test_segment_cache_shared import WITHIN, eventually, instance
from tests.private_redis import PrivateRedis

ON_POSTGRESQL = pytest.mark.parametrize("migrated_database", ["postgresql"], indirect=True)


def serving() -> float | None:
    return REGISTRY.get_sample_value("metric_segment_cache_serving")


@ON_POSTGRESQL
async def test_the_gauge_says_whether_the_metric_cache_serves(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    within = WITHIN + 2 * SAMPLE_SECONDS
    async with instance(migrated_database, private_redis.url, ingest=False) as b:
        await eventually(lambda: b.cache.serving and serving() == 1, "serving, and the gauge at 1", within)
        private_redis.kill()
        await eventually(lambda: not b.cache.serving and serving() == 0, "suspended, and the gauge at 0", within)
        private_redis.start()
        await eventually(lambda: b.cache.serving and serving() == 1, "serving again, the gauge at 1", within)
    assert serving() == 0  # the worker stopped: it serves nothing
