"""The Sentinel client of redis_client.py against a real group (tests/sentinel_group.py): after a
planned failover (`SENTINEL FAILOVER`, the old primary still accepting writes until the Sentinels
demote it seconds later) every command goes to the new primary, including the one in flight when
the worker switched and everything sent later on the connection that carried it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from observatory_api.redis_client import PoolLimits, RedisConnection, open_redis
from tests.sentinel_group import SentinelGroup, sentinel_group

TIMEOUT = 5.0
# The queue a command in flight waits on across the switch, and the counter written afterwards.
QUEUE = "in-flight"
COUNTER = "after-switch"
WRITES = 20


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with sentinel_group(tmp_path) as started:
        yield started


def open_pooled(group: SentinelGroup) -> RedisConnection:
    connection = open_redis(
        group.settings(), timeout=TIMEOUT, pool=PoolLimits(max_connections=4, health_check_seconds=10)
    )
    assert connection is not None and connection.via_sentinel
    return connection


async def wait_on_queue(connection: RedisConnection) -> object:
    return await connection.client.blpop([QUEUE], timeout=3)


async def test_the_command_in_flight_at_the_switch_and_its_connection_go_to_the_new_primary(
    group: SentinelGroup,
) -> None:
    connection = open_pooled(group)
    client = connection.client
    try:
        assert await client.ping()
        assert not await connection.check_primary(TIMEOUT)  # learns where the primary is
        old = group.current_primary()
        # A command in flight on the old primary across the switch (a request's, in the app): it
        # holds its connection while it waits.
        in_flight = asyncio.create_task(wait_on_queue(connection))
        await asyncio.sleep(0.2)
        assert not in_flight.done()
        await asyncio.to_thread(group.failover)
        new = await asyncio.to_thread(group.wait_for_new_primary, old)
        # The old primary still accepts writes: nothing but the client's own check moves it.
        assert group.data_client(old).info("replication")["role"] == "master"
        # The worker's check (every PRIMARY_CHECK_SECONDS in the app) finds the switch once the
        # Sentinels agree on it.
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not await connection.check_primary(TIMEOUT):
            assert asyncio.get_running_loop().time() < deadline, "the check never saw the new primary"
            await asyncio.sleep(0.05)
        assert not in_flight.done()  # still waiting: the command was not answered by the old primary
        # The command is sent again (redis-py's one retry on a closed connection): to the new
        # primary, where the item is pushed. On the old one it would wait and time out (None).
        await asyncio.sleep(0.2)
        group.data_client(new).rpush(QUEUE, b"item")
        assert await asyncio.wait_for(in_flight, TIMEOUT) == (QUEUE.encode(), b"item")
        # The connection that carried it is back in the pool and taken first (the pool is LIFO):
        # every later write lands on the new primary too.
        for _ in range(WRITES):
            await client.incr(COUNTER)
        assert int(group.data_client(new).get(COUNTER) or 0) == WRITES
        assert group.data_client(old).get(COUNTER) in (None, str(WRITES).encode())  # only by resync
    finally:
        await connection.aclose()
