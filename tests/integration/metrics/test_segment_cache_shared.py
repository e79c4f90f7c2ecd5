"""The segment cache shared through Redis: two app instances on one database and one Redis. A late
span written through instance A drops instance B's cached closed segments; while B's subscription
is lost (Redis killed, its connection cut) B keeps nothing and answers from the database, and it
caches again once subscribed. Each test runs its own redis-server (tests/integration/security),
so the shared Redis on 6379 is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from observatory_api.app import create_app
from observatory_api.core.background import background_task
from observatory_api.metrics.segment_cache import EVERYTHING, SegmentCache
from observatory_api.metrics.segment_sync import (
    LOST_AFTER_SECONDS,
    RETRY_SECONDS,
    SegmentPublisher,
    SegmentSubscriber,
    channel_name,
    decode,
)
from observatory_api.settings import DatabaseSettings, FeatureSettings, RedisSettings, Settings
from tests.conftest import auth_headers, make_settings
from tests.integration.ingest.payloads import encoded, trace_request
from tests.integration.metrics.test_segment_cache import URL, llm_call
from tests.integration.test_cli import run_cli
from tests.private_redis import PrivateRedis

# The failures are Redis's: one backend is enough for them.
ON_POSTGRESQL = pytest.mark.parametrize("migrated_database", ["postgresql"], indirect=True)
# Longer than a subscription takes to be lost or made again, far shorter than the 60 s TTL.
WITHIN = LOST_AFTER_SECONDS + 4 * RETRY_SECONDS + 2


class Instance:
    def __init__(self, client: AsyncTestClient[Any], settings: Settings) -> None:
        self.client = client
        self.cache: SegmentCache = client.app.state.resources.metric_segments
        self.reader = auth_headers(settings, "developer")
        self.writer = auth_headers(settings, "ingest")

    async def count(self, body: dict[str, Any]) -> int:
        response = await self.client.post(URL, json=body, headers=self.reader)
        assert response.status_code == 200, response.text
        return int(response.json()["totals"]["request_count_count"])

    async def send(self, at: datetime, index: int) -> None:
        content, headers = encoded(trace_request([llm_call(at, index)]), "protobuf")
        response = await self.client.post("/v1/traces", content=content, headers={**self.writer, **headers})
        assert response.status_code == 200, response.text


@contextlib.asynccontextmanager
async def instance(database: DatabaseSettings, redis_url: str, *, ingest: bool) -> AsyncIterator[Instance]:
    settings = make_settings(
        database,
        features=FeatureSettings(ingest=ingest),
        # A loaded machine stalls Redis past the default 0.25 s socket timeout.
        redis=RedisSettings(url=redis_url, socket_timeout_seconds=2),
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield Instance(client, settings)


@contextlib.asynccontextmanager
async def writer_and_reader(database: DatabaseSettings, redis_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    """Instance A ingesting and B only reading, on one database and Redis, both subscribed."""
    async with (
        instance(database, redis_url, ingest=True) as a,
        instance(database, redis_url, ingest=False) as b,
    ):
        await eventually(lambda: a.cache.serving and b.cache.serving, "both subscribed")
        yield a, b


async def eventually(check: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.02)


async def until_cached(b: Instance, body: dict[str, Any], count: int) -> None:
    """Ask until B keeps segments of `body` again, every answer `count`."""
    deadline = asyncio.get_running_loop().time() + WITHIN
    while True:
        assert await b.count(body) == count
        if len(b.cache) > 0:
            return
        assert asyncio.get_running_loop().time() < deadline, "B does not cache again"
        await asyncio.sleep(0.05)


async def until_counted(b: Instance, body: dict[str, Any], count: int) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN
    while (found := await b.count(body)) != count:
        assert asyncio.get_running_loop().time() < deadline, f"B still answers {found}, not {count}"
        await asyncio.sleep(0.05)


def window(now: datetime) -> dict[str, Any]:
    """Whole closed days and hours, read from the rollups: every segment is cacheable."""
    return {
        "from": (now - timedelta(days=3)).isoformat(),
        "to": (now - timedelta(hours=1)).isoformat(),
        "metrics": [{"id": "request_count"}, {"id": "latency_ms", "aggregation": "p95"}],
        "group_by": ["model"],
        "source": "rollup",
    }


def hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


async def test_a_write_through_one_instance_drops_the_others_cached_segments(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    now = hour()
    body = window(now)
    async with writer_and_reader(migrated_database, private_redis.url) as (a, b):
        assert await b.count(body) == 0
        kept = len(b.cache)
        assert kept > 0
        assert await b.count(body) == 0 and len(b.cache) == kept  # answered from its cache

        # A write outside B's window is heard (B's generation moves) and drops none of it.
        heard = b.cache.generation
        await a.send(now - timedelta(days=10), 0)
        await eventually(lambda: b.cache.generation > heard, "B hears A's write")
        assert len(b.cache) == kept

        # A late span two days back, through A: B's segments of that day go, the others stay.
        await a.send(now - timedelta(days=2, minutes=-7), 1)
        await eventually(lambda: len(b.cache) < kept, "B drops the segments A's write touched")
        assert len(b.cache) > 0
        assert await b.count(body) == 1
        assert await a.count(body) == 1


@ON_POSTGRESQL
async def test_while_redis_is_down_nothing_is_cached_and_no_write_is_missed(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    now = hour()
    body = window(now)
    async with writer_and_reader(migrated_database, private_redis.url) as (a, b):
        assert await b.count(body) == 0
        assert len(b.cache) > 0

        private_redis.kill()
        await eventually(lambda: not b.cache.serving and not a.cache.serving, "both suspended")
        assert len(b.cache) == 0
        # A's write cannot be published now: B must not answer from what it read before.
        await a.send(now - timedelta(days=2, minutes=-7), 0)
        assert await b.count(body) == 1
        assert len(b.cache) == 0  # nothing kept while unsubscribed
        assert await a.count(body) == 1

        private_redis.start()
        await eventually(lambda: a.cache.serving and b.cache.serving, "both subscribed again")
        await until_cached(b, body, 1)
        # A, subscribed again, may also ask every cache to drop everything (segment_sync.py): B
        # must come to the new count within a message's delivery either way, never after 60 s.
        await a.send(now - timedelta(days=1, hours=5), 1)
        await until_counted(b, body, 2)


@ON_POSTGRESQL
async def test_a_cut_subscription_empties_the_cache_until_it_is_made_again(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    """Redis stays up but closes the subscriber's connection: redis-py would reconnect silently,
    and what was published meanwhile would be lost; the cache starts again from empty instead."""
    body = window(hour())
    async with instance(migrated_database, private_redis.url, ingest=False) as b:
        await eventually(lambda: b.cache.serving, "subscribed")
        await b.count(body)
        assert len(b.cache) > 0
        generation = b.cache.generation
        assert private_redis.client().client_kill_filter(_type="pubsub") == 1
        await eventually(lambda: b.cache.generation > generation, "the loss is noticed")
        assert len(b.cache) == 0
        await eventually(lambda: b.cache.serving, "subscribed again")
        await b.count(body)
        assert len(b.cache) > 0


@ON_POSTGRESQL
async def test_a_redis_that_stops_answering_suspends_the_cache(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    """No error, no closed connection, just silence (CLIENT PAUSE): the PINGs go unanswered."""
    body = window(hour())
    async with instance(migrated_database, private_redis.url, ingest=False) as b:
        await eventually(lambda: b.cache.serving, "subscribed")
        await b.count(body)
        assert len(b.cache) > 0
        private_redis.client().client_pause(int((LOST_AFTER_SECONDS + 3) * 1000), all=True)
        await eventually(lambda: not b.cache.serving, "suspended", within=LOST_AFTER_SECONDS + 2)
        assert len(b.cache) == 0
        await eventually(lambda: b.cache.serving, "subscribed again once Redis answers")


def test_seed_publishes_the_ranges_it_wrote(tmp_path: Path, private_redis: PrivateRedis) -> None:
    """`seed` writes beside running servers: their caches hear of every range it touched."""
    subscriber = private_redis.client().pubsub()
    subscriber.subscribe(channel_name("observatory"))
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    end = datetime(2026, 11, 20, tzinfo=UTC)
    result = run_cli(
        "seed",
        "--traces",
        "30",
        "--days",
        "3",
        "--end",
        end.isoformat(),
        cwd=tmp_path,
        env={"REDIS_URL": private_redis.url},
    )
    assert result.returncode == 0, result.stderr
    heard: list[tuple[datetime, datetime]] = []
    while (message := subscriber.get_message(timeout=1)) is not None:
        heard += decode(message["data"])[1]
    assert heard
    with sqlite3.connect(tmp_path / "observatory.db") as db:
        first, last = db.execute("SELECT min(start_time), max(start_time) FROM spans").fetchone()
    assert min(f for f, _ in heard) <= _stored_time(first)
    assert max(la for _, la in heard) >= _stored_time(last)


def _stored_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_a_subscription_made_again_asks_every_cache_to_drop_everything(private_redis: PrivateRedis) -> None:
    """What a writer published just before its subscription broke may have gone to a primary the
    others no longer hear (a Sentinel failover): when it subscribes again it tells them all."""
    client = Redis.from_url(private_redis.url, socket_timeout=5)
    cache = SegmentCache(serving=False)
    resubscribed: list[bool] = []
    subscriber = SegmentSubscriber(
        client, channel_name("observatory"), "me", cache, resubscribed=lambda: resubscribed.append(True)
    )
    try:
        async with background_task(subscriber.run(), name="subscriber"):
            await eventually(lambda: cache.serving, "subscribed")
            assert resubscribed == []  # the first subscription asks nothing of the others
            assert private_redis.client().client_kill_filter(_type="pubsub") == 1
            await eventually(lambda: resubscribed == [True], "subscribed again")
            assert cache.serving
    finally:
        await client.aclose()
    # And a publisher's `everything` reaches another subscriber as the widest range.
    publisher_client = Redis.from_url(private_redis.url, socket_timeout=5)
    listener = private_redis.client().pubsub()
    listener.subscribe(channel_name("observatory"))
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    publisher = SegmentPublisher(publisher_client, channel_name("observatory"), "writer")
    try:
        async with background_task(publisher.run(), name="publisher"):
            publisher.everything()
            assert await publisher.flush(5)
    finally:
        await publisher_client.aclose()
    message = listener.get_message(timeout=5)
    assert message is not None and decode(message["data"]) == ("writer", [EVERYTHING])
