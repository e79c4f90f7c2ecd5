"""The security state store: Redis when `REDIS_URL` is set, else an in-process Litestar MemoryStore.

It holds API-key lookups, the `jti` deny list, refresh-token rotation state and rate-limit
counters, under `<redis.key_prefix>:<feature>:...`. Every Redis call has a short deadline; after
a failure Redis is skipped for a moment so that requests never queue behind a dead server.
Callers decide what a `StoreUnavailable` means (fail open or closed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from litestar.stores.memory import MemoryStore
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("observatory_api.security.store")

# Fixed window over every bucket at once: refuse (without counting) when any bucket is full,
# else count the request in all of them. One script, so concurrent workers never overshoot.
_HIT_SCRIPT = """
local window = tonumber(ARGV[1])
local out = {1}
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  local ttl = redis.call('PTTL', KEYS[i])
  if count >= tonumber(ARGV[i + 1]) and ttl > 0 then out[1] = 0 end
  out[#out + 1] = count
  out[#out + 1] = ttl
end
if out[1] == 0 then return out end
for i = 1, #KEYS do
  local count = redis.call('INCR', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[i], window)
    ttl = window
  end
  out[2 * i] = count
  out[2 * i + 1] = ttl
end
return out
"""


_TIMEOUTS_BEFORE_COOLDOWN = 5


def store_redis_client(url: str, password: str | None, timeout: float) -> Redis:
    """The security store's own client: a bounded pool that waits for a free connection (a burst
    reuses connections instead of opening hundreds), every wait bounded by `timeout`."""
    pool = BlockingConnectionPool.from_url(
        url,
        password=password,
        max_connections=32,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return Redis(connection_pool=pool)


class StoreUnavailable(Exception):
    """The store could not be reached in time."""


@dataclass(frozen=True, slots=True)
class WindowCount:
    count: int  # requests counted in the window, including this one when allowed
    reset_ms: int  # until the window ends


@dataclass(frozen=True, slots=True)
class HitResult:
    allowed: bool
    counts: tuple[WindowCount, ...]


class SecurityStore:
    """The interface; see RedisSecurityStore and MemorySecurityStore."""

    backend = "none"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        raise NotImplementedError

    async def delete(self, *keys: str) -> None:
        raise NotImplementedError

    async def claim(self, key: str, ttl: int) -> bool:
        """Set `key` only if absent; True for the one caller that set it."""
        raise NotImplementedError

    async def exists_any(self, *keys: str) -> bool:
        raise NotImplementedError

    async def hit(self, buckets: Sequence[tuple[str, int]], window_seconds: int) -> HitResult:
        """Count one request in every (key, limit) bucket unless one of them is full."""
        raise NotImplementedError

    async def delete_expired(self) -> None:
        """Periodic housekeeping (the memory store only)."""


class RedisSecurityStore(SecurityStore):
    backend = "redis"

    def __init__(self, redis: Redis, prefix: str, *, timeout: float, cooldown: float = 2.0) -> None:
        super().__init__(prefix)
        self._redis = redis
        self._timeout = timeout
        self._cooldown = cooldown
        self._down_until = 0.0
        self._timeouts_in_a_row = 0
        self._hit = redis.register_script(_HIT_SCRIPT)

    async def _call(self, operation: str, coroutine_factory):  # type: ignore[no-untyped-def]
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis was unreachable moments ago")
        try:
            async with asyncio.timeout(self._timeout):
                result = await coroutine_factory()
        except (RedisError, OSError, TimeoutError) as exc:
            # A refused connection means Redis is down: skip it for a moment. A timeout may be a
            # busy event loop under a burst: skip Redis only after several in a row.
            timed_out = isinstance(exc, TimeoutError | RedisTimeoutError)
            self._timeouts_in_a_row = self._timeouts_in_a_row + 1 if timed_out else 0
            if not timed_out or self._timeouts_in_a_row >= _TIMEOUTS_BEFORE_COOLDOWN:
                self._down_until = time.monotonic() + self._cooldown
            logger.warning("redis unavailable", extra={"operation": operation, "error": exc.__class__.__name__})
            raise StoreUnavailable(f"redis {operation} failed: {exc.__class__.__name__}") from None
        self._timeouts_in_a_row = 0
        return result

    async def get(self, key: str) -> bytes | None:
        return await self._call("get", lambda: self._redis.get(key))

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._call("set", lambda: self._redis.set(key, value, ex=max(1, ttl)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call("delete", lambda: self._redis.delete(*keys))

    async def claim(self, key: str, ttl: int) -> bool:
        return bool(await self._call("claim", lambda: self._redis.set(key, b"1", ex=max(1, ttl), nx=True)))

    async def exists_any(self, *keys: str) -> bool:
        return bool(await self._call("exists", lambda: self._redis.exists(*keys)))

    async def hit(self, buckets: Sequence[tuple[str, int]], window_seconds: int) -> HitResult:
        keys = [key for key, _ in buckets]
        args = [window_seconds * 1000, *(limit for _, limit in buckets)]
        raw = await self._call("rate_limit", lambda: self._hit(keys=keys, args=args))
        counts = tuple(
            WindowCount(count=int(raw[1 + 2 * i]), reset_ms=max(0, int(raw[2 + 2 * i]))) for i in range(len(keys))
        )
        return HitResult(allowed=bool(raw[0]), counts=counts)


class MemorySecurityStore(SecurityStore):
    """One process only: each granian worker counts and remembers on its own (documented)."""

    backend = "memory"

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self._store = MemoryStore()
        self._lock = anyio.Lock()

    async def get(self, key: str) -> bytes | None:
        return await self._store.get(key)

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._store.set(key, value, expires_in=max(1, ttl))

    async def delete(self, *keys: str) -> None:
        for key in keys:
            await self._store.delete(key)

    async def claim(self, key: str, ttl: int) -> bool:
        async with self._lock:
            if await self._store.exists(key):
                return False
            await self._store.set(key, b"1", expires_in=max(1, ttl))
            return True

    async def exists_any(self, *keys: str) -> bool:
        for key in keys:
            if await self._store.exists(key):
                return True
        return False

    async def hit(self, buckets: Sequence[tuple[str, int]], window_seconds: int) -> HitResult:
        async with self._lock:
            current = []
            for key, _ in buckets:
                value = await self._store.get(key)
                ttl = await self._store.expires_in(key) if value is not None else None
                current.append((int(value) if value else 0, ttl))
            allowed = all(count < limit for (count, _), (_, limit) in zip(current, buckets, strict=True))
            counts = []
            for (key, _), (count, ttl) in zip(buckets, current, strict=True):
                remaining = ttl if ttl is not None and ttl > 0 else window_seconds
                if allowed:
                    count += 1
                    await self._store.set(key, str(count).encode(), expires_in=remaining)
                counts.append(WindowCount(count=count, reset_ms=remaining * 1000))
            return HitResult(allowed=allowed, counts=tuple(counts))

    async def delete_expired(self) -> None:
        await self._store.delete_expired()
