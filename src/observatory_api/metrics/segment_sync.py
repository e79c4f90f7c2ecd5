"""The segment caches of every worker and instance kept right through Redis pub/sub.

Each writer publishes the time ranges its commits touched (`SegmentPublisher`) on one channel,
`<redis.key_prefix>:metrics:segments`; every worker's `SegmentSubscriber` invalidates its cache by
them. Pub/sub delivers nothing to a subscriber that is not connected, so the cache serves only
while the subscription is known to be up: it is suspended (emptied, serving and storing nothing)
when the connection fails, is re-made, or stays silent for `LOST_AFTER_SECONDS` (it is PINGed every
`PING_SECONDS`), and resumes, empty, once the channel's subscription is confirmed again.

A writer's own cache is invalidated in process before its write returns; the others hear of it
within a message's delivery (milliseconds). Publishing never holds the write path: the ranges are
queued and sent in order by a task, merged while a send is in flight, retried while Redis fails.
A worker whose subscription was re-made also asks every cache to drop everything: after a Sentinel
failover, what it published just before may have reached only the old primary.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from observatory_api.metrics.segment_cache import EVERYTHING, SegmentCache

logger = logging.getLogger("observatory_api.metrics.segment_sync")

PING_SECONDS = 1.0
LOST_AFTER_SECONDS = 3.0
RETRY_SECONDS = 0.5
# Ranges queued while a send is in flight, at most; past it they merge into one (wider: stricter).
MAX_PENDING = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Range = tuple[datetime, datetime]


def channel_name(key_prefix: str) -> str:
    return f"{key_prefix}:metrics:segments"


def new_origin() -> str:
    """This process's name on the channel: it skips its own messages (already invalidated)."""
    return uuid.uuid4().hex


def encode(origin: str, ranges: list[Range]) -> bytes:
    """`origin first last [first last ...]`, times in microseconds since the epoch."""
    times = " ".join(f"{_micros(first)} {_micros(last)}" for first, last in ranges)
    return f"{origin} {times}".encode()


def decode(data: bytes) -> tuple[str, list[Range]]:
    origin, *times = data.decode().split()
    if not times or len(times) % 2:
        raise ValueError("a message holds pairs of times")
    moments = [_EPOCH + timedelta(microseconds=int(value)) for value in times]
    return origin, list(zip(moments[::2], moments[1::2], strict=True))


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class SegmentPublisher:
    """Sends the ranges `stored` is told of, in order, from its `run` task."""

    def __init__(self, client: Redis, channel: str, origin: str) -> None:
        self._client = client
        self._channel = channel
        self._origin = origin
        self._pending: list[Range] = []
        self._wake = asyncio.Event()
        self._sent = asyncio.Event()
        self._sent.set()

    def everything(self) -> None:
        """Tell every cache to drop all it holds: what this process published lately may have gone
        to a Redis its subscribers no longer listen to (a failover moved the primary)."""
        self.stored(*EVERYTHING)

    def stored(self, first: datetime, last: datetime) -> None:
        """Spans from `first` to `last` were committed (the writer's `on_stored`)."""
        self._pending.append((first, last))
        if len(self._pending) > MAX_PENDING:
            self._pending = [(min(f for f, _ in self._pending), max(la for _, la in self._pending))]
        self._sent.clear()
        self._wake.set()

    async def run(self) -> None:
        """Publish until cancelled; a failed send is kept and retried every `RETRY_SECONDS`."""
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                ranges, self._pending = self._pending, []
                try:
                    await self._client.publish(self._channel, encode(self._origin, ranges))
                except (RedisError, OSError) as exc:
                    self._pending = ranges + self._pending
                    if not failing:
                        logger.warning(
                            "could not publish metric cache invalidations (%s); retrying", type(exc).__name__
                        )
                    failing = True
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if failing:
                    logger.info("metric cache invalidations published again")
                failing = False
            self._sent.set()

    async def flush(self, within: float) -> bool:
        """Wait up to `within` seconds for everything stored to be sent; True when it was."""
        try:
            async with asyncio.timeout(within):
                await self._sent.wait()
        except TimeoutError:
            return False
        return True


class SubscriptionLost(Exception):
    pass


class SegmentSubscriber:
    """Keeps `cache` serving only while subscribed; invalidates it by every range heard."""

    def __init__(
        self,
        client: Redis,
        channel: str,
        origin: str,
        cache: SegmentCache,
        *,
        resubscribed: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._channel = channel
        self._origin = origin
        self._cache = cache
        # Called at every subscription but the first (this worker's publisher: `everything`).
        self._resubscribed = resubscribed
        self._subscriptions = 0

    async def run(self) -> None:
        """Subscribe, listen, and on any failure suspend the cache and subscribe again; until cancelled."""
        while True:
            try:
                await self._listen()
            except (RedisError, OSError, SubscriptionLost) as exc:
                if self._cache.serving:
                    logger.warning("metric cache suspended: its Redis subscription was lost (%s)", type(exc).__name__)
            finally:
                self._cache.suspend()
            await asyncio.sleep(RETRY_SECONDS)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            connection = cast("AbstractConnection | None", pubsub.connection)  # redis-py types it None
            assert connection is not None
            # A read that fails must end the subscription here, never be re-made silently inside
            # redis-py: the messages sent meanwhile are gone (the retry is given back below).
            kept_retry = connection.retry
            connection.retry = Retry(NoBackoff(), 0)
            # A reconnect that happens anyway (the connection was closed between two reads, e.g. by
            # a Sentinel failover) suspends until the new subscription is confirmed.
            connection.register_connect_callback(self._reconnected)  # type: ignore[no-untyped-call]
            try:
                await self._read(pubsub)
            finally:
                connection.deregister_connect_callback(self._reconnected)  # type: ignore[no-untyped-call]
                connection.retry = kept_retry
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2

    async def _read(self, pubsub: PubSub) -> None:
        heard = pinged = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=PING_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                self._handle(message)
            if now - heard > LOST_AFTER_SECONDS:
                raise SubscriptionLost(f"nothing heard for {LOST_AFTER_SECONDS:g} s")
            if now - pinged >= PING_SECONDS:
                await pubsub.ping()
                pinged = now

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "subscribe":
            # Everything published from here on reaches this worker.
            if not self._cache.serving:
                logger.info("metric cache serving: subscribed to %s", self._channel)
            self._cache.resume()
            self._subscriptions += 1
            if self._subscriptions > 1:
                self._resubscribed()
        elif kind == "message":
            try:
                origin, ranges = decode(message["data"])
            except (ValueError, UnicodeDecodeError):
                logger.warning("unreadable metric cache invalidation; dropping the whole cache")
                self._cache.clear()
                return
            if origin != self._origin:
                for first, last in ranges:
                    self._cache.invalidate(first, last)

    def _reconnected(self, _connection: Any) -> None:
        self._cache.suspend()
