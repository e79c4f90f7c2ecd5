"""The security store on a real Redis that restarts, drops connections, refuses them or answers
errors: Redis is skipped (fail open) only when it is down, never after one stale connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from observatory_api.redis_client import WORKER_POOL, open_redis
from observatory_api.security.store import (
    _HIT_SCRIPT,
    _TIMEOUTS_BEFORE_COOLDOWN,
    WARM_CONNECTIONS,
    RedisSecurityStore,
    StoreUnavailable,
)
from observatory_api.settings import RedisSettings
from tests.integration.security.conftest import PrivateRedis


def store_redis_client(url: str, timeout: float) -> Redis:
    """The security store's client, as the lifespan opens it (no Sentinel: closing it is enough)."""
    connection = open_redis(RedisSettings(url=url), timeout=timeout, pool=WORKER_POOL)
    assert connection is not None
    return connection.client


LIMIT = 1000


@pytest_asyncio.fixture
async def store(private_redis: PrivateRedis) -> AsyncIterator[RedisSecurityStore]:
    # Cooldowns long enough that "skipped" and "tried" cannot be confused on a slow machine.
    redis = store_redis_client(private_redis.url, timeout=2.0)
    yield RedisSecurityStore(redis, "failures", timeout=2.0, cooldown=60.0, first_cooldown=60.0)
    await redis.aclose()


async def burst(store: RedisSecurityStore, count: int) -> list[int | str]:
    """`count` concurrent hits on one bucket: each one's count, or the error's class name."""
    results = await asyncio.gather(
        *(store.hit([("failures:bucket", LIMIT)], 60) for _ in range(count)), return_exceptions=True
    )
    return [r.__class__.__name__ if isinstance(r, BaseException) else r.counts[0].count for r in results]


async def test_connections_left_stale_by_a_restart_are_replaced_not_counted_as_failures(
    store: RedisSecurityStore, private_redis: PrivateRedis
) -> None:
    # Sixteen connections in the pool, all of them to the server about to go away.
    assert sorted(await burst(store, 16)) == list(range(1, 17))
    private_redis.restart()
    # Each stale connection fails once, is dropped, and its command goes again on a new socket:
    # every hit is counted by the new server (which starts from zero), none is skipped.
    assert sorted(await burst(store, 16)) == list(range(1, 17))
    assert await burst(store, 1) == [17]


async def test_connections_the_server_closed_are_replaced(
    store: RedisSecurityStore, private_redis: PrivateRedis
) -> None:
    assert sorted(await burst(store, 8)) == list(range(1, 9))
    # What a failover or a proxy does to idle connections, without a restart: the counts survive.
    assert private_redis.client().client_kill_filter(_type="normal") >= 8
    assert sorted(await burst(store, 8)) == list(range(9, 17))


async def test_a_refused_connection_skips_redis_until_the_cooldown_ends(
    store: RedisSecurityStore, private_redis: PrivateRedis
) -> None:
    assert await burst(store, 1) == [1]
    private_redis.kill()
    assert await burst(store, 1) == ["StoreUnavailable"]
    private_redis.start()
    # Redis is back, but this store no longer tries it within the cooldown: nothing queues
    # behind a server that was just refusing connections.
    with pytest.raises(StoreUnavailable, match="moments ago"):
        await store.get("failures:anything")


async def test_after_a_short_cooldown_one_call_finds_out_whether_redis_is_back(private_redis: PrivateRedis) -> None:
    redis = store_redis_client(private_redis.url, timeout=2.0)
    store = RedisSecurityStore(redis, "failures", timeout=2.0, cooldown=0.4, first_cooldown=0.05)
    try:
        private_redis.kill()
        assert await burst(store, 1) == ["StoreUnavailable"]
        private_redis.start()
        # A restart costs a moment of skipped calls, not the full cooldown: within a bounded
        # number of attempts (each after a short sleep) the store counts again.
        results = []
        for _ in range(100):
            results = await burst(store, 1)
            if results == [1]:
                break
            await asyncio.sleep(0.05)
        assert results == [1]
    finally:
        await redis.aclose()


async def test_an_error_answer_is_a_failed_call_not_a_down_redis(
    store: RedisSecurityStore, private_redis: PrivateRedis
) -> None:
    admin = private_redis.client()
    assert await burst(store, 1) == [1]
    # Out of memory with nothing to evict: Redis refuses the write, but it answers.
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    assert await burst(store, 1) == ["StoreUnavailable"]
    admin.config_set("maxmemory", "0")
    # Tried again at once: no cooldown was started.
    assert await burst(store, 1) == [2]


async def test_a_slow_redis_fails_single_calls_and_is_skipped_only_after_five_timeouts_in_a_row(
    private_redis: PrivateRedis,
) -> None:
    redis = store_redis_client(private_redis.url, timeout=0.2)
    store = RedisSecurityStore(redis, "failures", timeout=0.2, cooldown=60.0, first_cooldown=60.0)
    admin = private_redis.client()
    try:
        assert await burst(store, 1) == [1]
        # Redis holds every command for 10 s: it is up, but answers after the store's timeout.
        admin.execute_command("CLIENT", "PAUSE", "10000", "ALL")
        for _ in range(_TIMEOUTS_BEFORE_COOLDOWN):
            # Each call waits for Redis and gives up on its own (served unlimited by the limiter).
            with pytest.raises(StoreUnavailable, match="rate_limit failed: TimeoutError"):
                await store.hit([("failures:bucket", LIMIT)], 60)
        # Five in a row: Redis counts as down and is skipped without waiting.
        with pytest.raises(StoreUnavailable, match="moments ago"):
            await store.hit([("failures:bucket", LIMIT)], 60)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()


async def test_one_slow_answer_between_fast_ones_never_starts_a_cooldown(private_redis: PrivateRedis) -> None:
    redis = store_redis_client(private_redis.url, timeout=0.2)
    store = RedisSecurityStore(redis, "failures", timeout=0.2, cooldown=60.0, first_cooldown=60.0)
    admin = private_redis.client()
    try:
        for counted in range(1, 2 * _TIMEOUTS_BEFORE_COOLDOWN + 1):
            admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")
            with pytest.raises(StoreUnavailable, match="TimeoutError"):
                await store.hit([("failures:bucket", LIMIT)], 60)
            admin.execute_command("CLIENT", "UNPAUSE")
            # The next call goes to Redis at once and counts: the timeouts were not in a row.
            assert (await store.hit([("failures:bucket", LIMIT)], 60)).counts[0].count >= counted
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()


async def test_prepare_opens_connections_and_loads_the_script_before_the_first_request(
    store: RedisSecurityStore, private_redis: PrivateRedis
) -> None:
    admin = private_redis.client()
    sha = admin.script_load(_HIT_SCRIPT)
    admin.script_flush()
    await store.prepare()
    assert admin.script_exists(sha) == [True]
    clients = [c for c in admin.client_list() if c.get("cmd") != "client|list"]
    assert len(clients) >= WARM_CONNECTIONS


async def test_prepare_with_redis_down_logs_and_returns(
    store: RedisSecurityStore, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    private_redis.kill()
    await store.prepare()
    assert "redis not ready at start-up" in caplog.text
