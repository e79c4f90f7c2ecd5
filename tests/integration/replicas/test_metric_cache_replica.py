"""The metric segment cache over a real streaming replica (tests/replica.py): an invalidation can
arrive before the replica has the row, so a replica's read of an invalidated range is not kept
until the replica is known to hold the write; the answer is right once it does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from litestar.testing import AsyncTestClient

from observatory_api.app import create_app
from observatory_api.metrics.segment_cache import SegmentCache
from observatory_api.settings import DatabaseSettings, FeatureSettings, RedisSettings
from tests.conftest import _pg_url, auth_headers, make_settings
from tests.integration.ingest.payloads import encoded, trace_request
from tests.integration.metrics.test_segment_cache import URL, llm_call
from tests.private_redis import PrivateRedis
from tests.replica import StreamingReplica


async def _eventually(check: Callable[[], bool], what: str, within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.05)


async def test_a_replica_read_of_an_invalidated_range_is_kept_only_once_replayed(
    replicated_database: str, standby: StreamingReplica, private_redis: PrivateRedis
) -> None:
    settings = make_settings(
        DatabaseSettings(
            url=_pg_url(replicated_database),
            replica_urls=(standby.url(replicated_database),),
            max_replica_lag_seconds=30,
            replica_check_interval_seconds=0.25,
        ),
        features=FeatureSettings(ingest=True),
        redis=RedisSettings(url=private_redis.url, socket_timeout_seconds=2),
    )
    reader, writer = auth_headers(settings, "developer"), auth_headers(settings, "ingest")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    body = {
        "from": (now - timedelta(days=3)).isoformat(),
        "to": (now - timedelta(hours=1)).isoformat(),
        "metrics": [{"id": "request_count"}],
        "source": "rollup",
    }

    async with AsyncTestClient(create_app(settings)) as client:
        cache: SegmentCache = client.app.state.resources.metric_segments

        async def count() -> int:
            response = await client.post(URL, json=body, headers=reader)
            assert response.status_code == 200, response.text
            return int(response.json()["totals"]["request_count_count"])

        async def replica_ok() -> bool:
            ready = (await client.get("/ready")).json()
            return bool(ready["replicas"][0]["status"] == "ok")

        await _eventually(lambda: cache.serving, "subscribed")
        deadline = asyncio.get_running_loop().time() + 30
        while not await replica_ok():
            assert asyncio.get_running_loop().time() < deadline, "the replica never came into rotation"
            await asyncio.sleep(0.05)
        # Subscribing counted as a write everywhere (what was published before is unknown): the
        # replica's reads are kept once a check finds it past that moment. A check that lands
        # while an answer is being read (on TimescaleDB it awaits a refresh check per segment)
        # lets only its later segments be kept: full once two answers in a row keep as many.
        kept = 0
        for _ in range(200):
            assert await count() == 0
            if 0 < kept == len(cache):
                break
            kept = len(cache)
            await asyncio.sleep(0.05)
        full = len(cache)
        assert full > 0

        await standby.pause_replay()
        content, headers = encoded(trace_request([llm_call(now - timedelta(days=2, minutes=-7), 0)]), "protobuf")
        response = await client.post("/v1/traces", content=content, headers={**writer, **headers})
        assert response.status_code == 200, response.text
        assert len(cache) < full  # this worker's own write: dropped at once
        # The replica answers within its lag bound (30 s) without the span, as any replica read
        # may; what it read of the invalidated day must not be kept, or it would stay wrong.
        assert await count() == 0
        assert len(cache) < full

        await standby.resume_replay()
        await standby.caught_up()
        assert await count() == 1
        # Once a replica check finds it past the write, its reads are kept again: and right.
        for _ in range(200):
            if len(cache) == full:
                break
            await asyncio.sleep(0.05)
            assert await count() == 1
        assert len(cache) == full
        assert await count() == 1
