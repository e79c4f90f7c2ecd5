"""The security state store: Redis when `REDIS_URL` is set, else an in-process Litestar MemoryStore.

It holds API-key lookups, rate-limit counters and the API-key usage claims, under
`<redis.key_prefix>:<feature>:...`: state that may be lost (evicted, flushed, reset by a restart)
at the price of a cache miss or a limit window started afresh. Revocation state never lives here
(see security/revocation.py). Every Redis call has a short deadline. A connection a restart or a
failover left stale is replaced and the command sent again once, on a new socket; only when that
fails too (or the connection is refused) is Redis down, and skipped for a moment so that requests
never queue behind a dead server. Callers decide what a `StoreUnavailable` means.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from litestar.stores.memory import MemoryStore
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
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
# Connections opened at start-up, before the worker serves: a burst on a cold worker finds them
# ready instead of opening them all at once inside its requests' deadlines.
WARM_CONNECTIONS = 8


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

    async def hit(self, buckets: Sequence[tuple[str, int]], window_seconds: int) -> HitResult:
        """Count one request in every (key, limit) bucket unless one of them is full."""
        raise NotImplementedError

    async def delete_expired(self) -> None:
        """Periodic housekeeping (the memory store only)."""

    async def prepare(self) -> None:
        """Before the worker serves: connect and load what the first requests need (best effort)."""


class RedisSecurityStore(SecurityStore):
    backend = "redis"

    def __init__(
        self, redis: Redis, prefix: str, *, timeout: float, cooldown: float = 2.0, first_cooldown: float = 0.1
    ) -> None:
        super().__init__(prefix)
        self._redis = redis
        self._timeout = timeout
        # Skipped for `first_cooldown` after Redis is found down, then one call finds out whether
        # it is back; each failed probe doubles the wait, up to `cooldown`. A restart costs a
        # fraction of a second of skipped calls, a dead server one probe per `cooldown`.
        self._cooldown = cooldown
        self._first_cooldown = min(first_cooldown, cooldown)
        self._current_cooldown = 0.0  # 0: Redis is up
        self._down_until = 0.0
        self._probing = False
        self._timeouts_in_a_row = 0
        self._hit = redis.register_script(_HIT_SCRIPT)

    async def _call(self, operation: str, coroutine_factory: Callable[[], Awaitable[Any]]) -> Any:
        probe = self._current_cooldown > 0
        if time.monotonic() < self._down_until or (probe and self._probing):
            raise StoreUnavailable("redis was unreachable moments ago")
        self._probing = probe
        try:
            async with asyncio.timeout(self._timeout):
                result = await coroutine_factory()
        except (RedisError, OSError) as exc:
            self._note_failure(exc, probe=probe)
            logger.warning("redis unavailable", extra={"operation": operation, "error": exc.__class__.__name__})
            raise StoreUnavailable(f"redis {operation} failed: {exc.__class__.__name__}") from None
        finally:
            if probe:
                self._probing = False
        self._timeouts_in_a_row = 0
        self._current_cooldown = 0.0
        return result

    def _note_failure(self, exc: BaseException, *, probe: bool) -> None:
        """Skip Redis only when it is down, not after any one error."""
        if _timed_out(exc):
            # A busy event loop under a burst, or a slow Redis: skip it only after several in a row.
            self._timeouts_in_a_row += 1
            if self._timeouts_in_a_row >= _TIMEOUTS_BEFORE_COOLDOWN:
                self._skip(probe)
            return
        self._timeouts_in_a_row = 0
        if isinstance(exc, RedisConnectionError | OSError):
            # Refused, or failed again on a new socket after redis-py's one retry: Redis is down.
            self._skip(probe)
        # Any other error is an answer (out of memory, a script error): Redis is up.

    def _skip(self, probe: bool) -> None:
        if self._current_cooldown == 0:
            self._current_cooldown = self._first_cooldown
        elif probe:  # only a failed probe doubles the wait, not the calls in flight when Redis went
            self._current_cooldown = min(self._cooldown, 2 * self._current_cooldown)
        self._down_until = max(self._down_until, time.monotonic() + self._current_cooldown)

    async def prepare(self) -> None:
        """Open WARM_CONNECTIONS connections and load the rate-limit script, within the deadline.

        A failure is logged and left to the requests (Redis may come up later)."""
        pool = self._redis.connection_pool
        connections = []
        try:
            async with asyncio.timeout(max(self._timeout, 2.0)):
                for _ in range(WARM_CONNECTIONS):
                    # redis-py's asyncio ConnectionPool.get_connection has no annotations.
                    connections.append(await pool.get_connection())  # type: ignore[no-untyped-call]
                await self._redis.script_load(_HIT_SCRIPT)
        except (RedisError, OSError) as exc:
            logger.warning("redis not ready at start-up", extra={"error": exc.__class__.__name__})
        finally:
            for connection in connections:
                await pool.release(connection)

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call("get", lambda: self._redis.get(key))
        return value

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._call("set", lambda: self._redis.set(key, value, ex=max(1, ttl)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call("delete", lambda: self._redis.delete(*keys))

    async def claim(self, key: str, ttl: int) -> bool:
        return bool(await self._call("claim", lambda: self._redis.set(key, b"1", ex=max(1, ttl), nx=True)))

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
        # Rate-limit windows: key -> (count, monotonic end of the window).
        self._windows: dict[str, tuple[int, float]] = {}

    async def get(self, key: str) -> bytes | None:
        return await self._store.get(key)

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._store.set(key, value, expires_in=max(1, ttl))

    async def delete(self, *keys: str) -> None:
        for key in keys:
            await self._store.delete(key)
            self._windows.pop(key, None)

    async def claim(self, key: str, ttl: int) -> bool:
        async with self._lock:
            if await self._store.exists(key):
                return False
            await self._store.set(key, b"1", expires_in=max(1, ttl))
            return True

    async def hit(self, buckets: Sequence[tuple[str, int]], window_seconds: int) -> HitResult:
        # No await between reading and writing the windows: atomic on the event loop without a
        # lock (each request passes here; MemoryStore takes a lock for every get and set).
        now = time.monotonic()
        current = []
        for key, _ in buckets:
            window = self._windows.get(key)
            current.append(window if window is not None and window[1] > now else (0, now + window_seconds))
        allowed = all(count < limit for (count, _), (_, limit) in zip(current, buckets, strict=True))
        counts = []
        for (key, _), (count, ends) in zip(buckets, current, strict=True):
            if allowed:
                count += 1
                self._windows[key] = (count, ends)
            counts.append(WindowCount(count=count, reset_ms=max(0, math.ceil((ends - now) * 1000))))
        return HitResult(allowed=allowed, counts=tuple(counts))

    async def delete_expired(self) -> None:
        await self._store.delete_expired()
        now = time.monotonic()
        for key in [key for key, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[key]


def _timed_out(exc: BaseException) -> bool:
    # The pool's "No connection available" is a ConnectionError raised from a timeout: a busy
    # pool, not a dead server.
    return isinstance(exc, TimeoutError | RedisTimeoutError) or isinstance(exc.__cause__, TimeoutError)
