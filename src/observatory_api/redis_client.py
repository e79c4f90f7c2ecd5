"""The one place a Redis client is made: from `redis.url`, or through Sentinel (`redis.sentinel`).

Every user goes through `open_redis`: a server worker opens one client (`open_worker_redis`, in
the lifespan) that the security store (rate limits, API-key lookups, key-usage claims, the
response cache), /ready and tracing share; the CLI opens its own (dropping cached lookups on
revoke). With Sentinel the client asks the Sentinels for the primary whenever it
opens a connection, and drops a connection to a primary that was demoted (its writes answer
READONLY): after a failover the next connection goes to the new primary. Cluster is not
supported (docs/redis.md says why).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from observatory_api.settings import RedisSettings
from observatory_api.settings.redis_checks import sentinel_address

logger = logging.getLogger("observatory_api.redis")
# How often a worker asks the Sentinels whether the primary changed (security/setup.py).
PRIMARY_CHECK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """A bounded pool that waits (up to the client's timeout) for a free connection, instead of
    opening one per concurrent command; idle connections are PINGed after `health_check_seconds`."""

    max_connections: int
    health_check_seconds: float


# A worker's pool: a burst reuses connections instead of opening hundreds, every wait bounded by
# the client's timeout; a connection idle for 10 s is PINGed before its next command.
WORKER_POOL = PoolLimits(max_connections=32, health_check_seconds=10)


def worker_timeout(settings: RedisSettings) -> float:
    """The budget of a worker's Redis operations: one that a burst on a busy event loop does not
    exceed (redis.socket_timeout_seconds x 4, at least 1 s); never an unbounded wait."""
    return max(1.0, 4 * settings.socket_timeout_seconds)


class FollowingConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the pool for the primary whenever it reconnects.

    redis-py asks only when a connection is taken from the pool (`connect`): a connection closed
    while in use (a command in flight when `check_primary` switched) reconnects inside
    `send_packed_command`, through the base class's `connect_check_health`, to the address it
    had, the old primary. Its command's retry and every command after it then went there: after a
    planned failover the old primary accepts them until it is demoted, and they were lost.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]  # the Sentinels' primary, not the last address
        await super().send_packed_command(command, check_health)


class FollowingSentinelConnectionPool(SentinelConnectionPool):
    """Sentinel's pool with FollowingConnection, and never a connection to another address than
    the primary's handed out: one left connected to the old primary is closed and reopened."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        kwargs.setdefault("connection_class", FollowingConnection)
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        address = self.master_address
        at = (getattr(connection, "host", None), getattr(connection, "port", None))
        if self.is_master and address is not None and connection.is_connected and at != address:
            await connection.disconnect()
        await super().ensure_connection(connection)


class BlockingSentinelConnectionPool(FollowingSentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (the primary's address asked of the Sentinels) with BlockingConnectionPool's
    bound: redis-py offers each alone."""


class NewestSentinel(Sentinel):
    """Names the primary of the newest configuration any Sentinel reports (the highest
    `config-epoch`), asking them all at once; redis-py takes the first Sentinel that answers.

    After a failover the Sentinels learn the new configuration from each other over a few seconds;
    meanwhile one that has not yet would name the old primary, which (after a planned failover)
    still accepts writes, and the pool would reconnect there.
    """

    # The newest (config-epoch, primary) seen so far.
    _newest: tuple[int, tuple[str, int]] | None = None

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        async def ask(sentinel: Redis) -> Any:
            try:
                return await sentinel.sentinel_masters()
            except (RedisError, OSError):
                return None

        newest: tuple[int, tuple[str, int]] | None = None
        for masters in await asyncio.gather(*(ask(sentinel) for sentinel in self.sentinels)):
            state = masters.get(service_name) if isinstance(masters, dict) else None
            # A Sentinel in the middle of a failover still names the primary being replaced.
            if state and self.check_master_state(state, service_name) and "failover_in_progress" not in state["flags"]:
                epoch = int(state.get("config-epoch", 0))
                if newest is None or epoch > newest[0]:
                    newest = (epoch, (state["ip"], int(state["port"])))
        # Never back to an older configuration: when the Sentinels that know the newest one do
        # not answer, the others would name the primary of before the failover.
        if newest is None or (self._newest is not None and newest[0] < self._newest[0]):
            if self._newest is None:
                raise MasterNotFoundError(f"No master found for {service_name!r}")
            return self._newest[1]
        self._newest = newest
        return newest[1]


class RedisConnection:
    """A client and, with Sentinel, the Sentinel clients it asks: `aclose` closes both."""

    def __init__(self, client: Redis, sentinel: Sentinel | None = None, master_name: str | None = None) -> None:
        self.client = client
        self._sentinel = sentinel
        self._master_name = master_name
        self._primary: tuple[str, int] | None = None  # as the Sentinels named it at the last check

    @property
    def via_sentinel(self) -> bool:
        return self._sentinel is not None

    async def check_primary(self, within: float) -> bool:
        """Ask the Sentinels for the primary; when they name another one than at the last check,
        close every connection (in use too: a command in flight is sent again once on a new
        socket, to the new primary, FollowingConnection asking the Sentinels for it). True when
        it switched.

        redis-py re-asks the Sentinels only when it opens a connection or a write answers READONLY,
        and then closes only the idle connections to the old primary: the ones in use at that
        moment go back to the pool and on to the old primary. After a planned failover
        (`SENTINEL FAILOVER`) the old primary keeps accepting writes until the Sentinels demote it
        (11 s measured here): without this, counts would go on there, lost when it resyncs.
        """
        if self._sentinel is None or self._master_name is None:
            return False
        pool = self.client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        try:
            async with asyncio.timeout(within):
                address = await self._sentinel.discover_master(self._master_name)
        except (RedisError, OSError, TimeoutError):
            return False  # no Sentinel answers: the connections stay where they are
        # Both what the last check found (connections in use when redis-py re-asked stayed where
        # they were) and where the pool's last connection went (a reconnect may have been told of
        # the old primary by a Sentinel that had not yet learnt the failover).
        known = {self._primary, pool.master_address} - {None}
        self._primary = address
        if not known or known == {address}:
            return False
        pool.master_address = address
        await pool.disconnect(inuse_connections=True)
        logger.warning("redis primary changed", extra={"primary": f"{address[0]}:{address[1]}"})
        return True

    async def follow_primary(self, interval: float, within: float) -> None:
        """`check_primary` (each bounded by `within` seconds) every `interval` seconds, until
        cancelled (a lifespan task)."""
        while True:
            await asyncio.sleep(interval)
            await self.check_primary(within)

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        finally:
            if self._sentinel is not None:
                await self._sentinel.aclose()


def open_redis(settings: RedisSettings, *, timeout: float, pool: PoolLimits | None = None) -> RedisConnection | None:
    """A client for `settings` (None when Redis is not configured); no connection is opened yet.

    Every socket operation is bounded by `timeout`. With `pool`, the pool is bounded and a
    connection that a restart or a failover closed is replaced and the command sent again once,
    at once, on a new socket (a pool built by hand gets no retries from redis-py otherwise).
    """
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if pool is not None:
        options.update(
            max_connections=pool.max_connections,
            timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=pool.health_check_seconds,
        )
    if settings.sentinel.hosts:
        return _through_sentinel(settings, options, blocking=pool is not None)
    if settings.url is None:
        return None
    if pool is not None:
        return RedisConnection(
            Redis(connection_pool=BlockingConnectionPool.from_url(settings.url, password=settings.password, **options))
        )
    return RedisConnection(Redis.from_url(settings.url, password=settings.password, **options))


def open_worker_redis(settings: RedisSettings) -> RedisConnection | None:
    """The one client of a server worker (None without Redis): `WORKER_POOL`, `worker_timeout`."""
    return open_redis(settings, timeout=worker_timeout(settings), pool=WORKER_POOL)


def _through_sentinel(settings: RedisSettings, options: dict[str, Any], *, blocking: bool) -> RedisConnection:
    sentinel_settings = settings.sentinel
    assert sentinel_settings.master_name is not None  # settings validation requires it with hosts
    sentinel = NewestSentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
        [sentinel_address(host) for host in sentinel_settings.hosts],
        # The Sentinels' own connections: the same deadlines, their own password.
        sentinel_kwargs={
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
            "password": sentinel_settings.password,
        },
    )
    pool_class = BlockingSentinelConnectionPool if blocking else FollowingSentinelConnectionPool
    client = sentinel.master_for(
        sentinel_settings.master_name, connection_pool_class=pool_class, password=settings.password, **options
    )
    return RedisConnection(client, sentinel, sentinel_settings.master_name)
