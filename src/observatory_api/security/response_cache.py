"""Response caching on Litestar's response cache and store, made safe for an authenticated API.

- The key holds the route template, the caller's role (a viewer never receives a developer's
  response with content), the subject for handlers marked `opt={"cache_per_subject": True}`, the
  response encoding, the method, the path and the full query.
- TTLs per route template come from `cache.endpoints` (default `cache.default_ttl_seconds`); a
  handler takes part when it is declared with `cache=True`.
- `Cache-Control: no-cache` from the client skips the lookup and refreshes the entry.
- ConditionalGetMiddleware adds a weak `ETag`, `Cache-Control: private, max-age=<ttl>` and `Vary`,
  answers 304 to a matching `If-None-Match`, and counts hits and misses.
- A store error is a miss, never a failed request.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import heapq
import logging
import time
import uuid
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import zstandard
from litestar import Litestar, Request
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.routes import HTTPRoute
from litestar.stores.base import Store
from litestar.types import ASGIApp, HTTPResponseStartEvent, HTTPScope, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from observatory_api.compression import negotiate
from observatory_api.observability.metrics import cache_hits_total, cache_misses_total, cache_size_bytes
from observatory_api.security.permissions import Principal
from observatory_api.settings import CacheSettings

logger = logging.getLogger("observatory_api.security.cache")
STORE_NAME = "response_cache"
VARY = "Authorization, X-API-Key, Accept-Encoding"
_STATE_KEY = "observatory_cache_key"
_KNOWN_MISS = "observatory_cache_known_miss"
# The key of a lookup that is known to miss: the store is not asked (ResilientCacheStore.get).
KNOWN_MISS_KEY = "observatory:cache:known-miss"


def _principal(scope: Scope) -> Principal | None:
    user = scope.get("user")
    return user if isinstance(user, Principal) else None


def no_cache_requested(headers: Mapping[str, str]) -> bool:
    directives = headers.get("cache-control", "").lower()
    return "no-cache" in directives or "no-store" in directives or headers.get("pragma") == "no-cache"


@functools.lru_cache(maxsize=256)
def _encoding(accept_encoding: str) -> str:
    # The compression middleware's own choice: a stored body is served only in its encoding.
    return negotiate(accept_encoding)


@functools.lru_cache(maxsize=4096)
def _canonical_query(query_string: bytes) -> str:
    # Sorted, so that the order of the parameters does not make another entry.
    return urlencode(sorted(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)))


def cache_key(request: Request[Any, Any, Any]) -> str:
    """Called for the lookup and again for the write; a client's no-cache makes the lookup miss."""
    scope = request.scope
    state = scope.setdefault("state", {})
    if _STATE_KEY in state:
        # The fast path looked this request up a moment ago and missed: Litestar's lookup is skipped.
        return KNOWN_MISS_KEY if state.pop(_KNOWN_MISS, False) else str(state[_STATE_KEY])
    principal = _principal(scope)
    subject = principal.subject if principal and scope["route_handler"].opt.get("cache_per_subject") else "-"
    headers = request.headers
    path = scope.get("root_path", "") + scope["path"]
    key = "|".join(
        (
            scope.get("path_template") or path,
            principal.role if principal else "anonymous",
            subject,
            _encoding(headers.get("accept-encoding", "")),
            scope["method"],
            path,
            _canonical_query(scope.get("query_string", b"")),
        )
    )
    state[_STATE_KEY] = key
    if no_cache_requested(headers):
        return f"{key}|bypass:{uuid.uuid4().hex}"
    return key


def mark_known_miss(scope: Scope) -> None:
    """After a lookup of this request's key missed: the next lookup is answered without the store."""
    scope.setdefault("state", {})[_KNOWN_MISS] = True


def should_store(scope: HTTPScope, status_code: int) -> bool:
    handler = scope["route_handler"]
    return (
        status_code == 200
        and scope["method"] == "GET"
        and bool(getattr(handler, "cache", False))
        and _principal(scope) is not None
    )


def response_cache_config(settings: CacheSettings) -> ResponseCacheConfig:
    return ResponseCacheConfig(
        default_expiration=settings.default_ttl_seconds,
        key_builder=cache_key,
        store=STORE_NAME,
        cache_response_filter=should_store,
    )


def apply_cache_ttls(app: Litestar, settings: CacheSettings) -> None:
    """Give each cacheable handler of this app (Litestar copies handlers per app) its configured TTL."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.cache:
                ttl = settings.endpoints.get(route.path_format, settings.default_ttl_seconds)
                handler.cache = ttl if settings.enabled else False


class LocalCacheStore(Store):
    """The worker's response cache without Redis: a dict with expiry times, no lock and no await
    inside (Litestar's MemoryStore takes an anyio lock and reads the wall clock on every get)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, float | None]] = {}

    async def get(self, key: str, renew_for: int | Any = None) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        value, expires_at = found
        if expires_at is not None and expires_at <= time.monotonic():
            del self._entries[key]
            return None
        if isinstance(renew_for, int) and expires_at is not None:
            self._entries[key] = (value, time.monotonic() + renew_for)
        return value

    async def set(self, key: str, value: str | bytes, expires_in: int | Any = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        self._entries[key] = (data, time.monotonic() + expires_in if isinstance(expires_in, int) else None)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def delete_all(self) -> None:
        self._entries.clear()

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        found = self._entries.get(key)
        if found is None or found[1] is None:
            return None
        return int(found[1] - time.monotonic())

    async def delete_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, at) in self._entries.items() if at is not None and at <= now]:
            del self._entries[key]


class ResilientCacheStore(Store):
    """Wraps the real store: errors become misses; bytes written are tracked for `cache_size_bytes`."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._expiring: list[tuple[float, int]] = []

    def _expire_sizes(self) -> None:
        now = time.monotonic()
        while self._expiring and self._expiring[0][0] <= now:
            cache_size_bytes.dec(heapq.heappop(self._expiring)[1])

    async def get(self, key: str, renew_for: int | Any = None) -> bytes | None:
        self._expire_sizes()
        if key == KNOWN_MISS_KEY:
            return None
        try:
            return await self.inner.get(key, renew_for)
        except Exception as exc:
            logger.warning("response cache read failed", extra={"error": exc.__class__.__name__})
            return None

    async def set(self, key: str, value: str | bytes, expires_in: int | Any = None) -> None:
        try:
            await self.inner.set(key, value, expires_in)
        except Exception as exc:
            logger.warning("response cache write failed", extra={"error": exc.__class__.__name__})
            return
        if isinstance(expires_in, int):
            heapq.heappush(self._expiring, (time.monotonic() + expires_in, len(value)))
            cache_size_bytes.inc(len(value))

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def delete_all(self) -> None:
        await self.inner.delete_all()
        for _, size in self._expiring:
            cache_size_bytes.dec(size)
        self._expiring.clear()

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def expires_in(self, key: str) -> int | None:
        return await self.inner.expires_in(key)

    async def delete_expired(self) -> None:
        self._expire_sizes()
        if hasattr(self.inner, "delete_expired"):
            await self.inner.delete_expired()


def _etag(body: bytes, encoding: str | None) -> str:
    if encoding == "gzip":
        with contextlib.suppress(OSError, EOFError, zlib.error):
            body = gzip.decompress(body)
    elif encoding == "zstd":
        with contextlib.suppress(zstandard.ZstdError):
            body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    # Weak: the same representation may travel gzipped or not.
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == wanted for candidate in if_none_match.split(","))


class ConditionalGetMiddleware(ASGIMiddleware):
    """ETag, Cache-Control, Vary and 304 for cacheable GET routes; counts cache hits and misses."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        ttl = getattr(handler, "cache", False) if isinstance(handler, HTTPRouteHandler) else False
        if scope.get("method") != "GET" or not ttl:
            await next_app(scope, receive, send)
            return
        route = scope.get("path_template") or scope["path"]
        request_headers = dict(scope.get("headers", ()))
        if_none_match = request_headers.get(b"if-none-match", b"").decode("latin-1")
        start: HTTPResponseStartEvent | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            await self._finish(scope, start, b"".join(chunks), route, int(ttl), if_none_match, send)

        await next_app(scope, receive, buffered)

    @staticmethod
    async def _finish(
        scope: Scope, start: HTTPResponseStartEvent, body: bytes, route: str, ttl: int, if_none_match: str, send: Send
    ) -> None:
        if start["status"] == 200:
            hit = bool(ScopeState.from_scope(scope).is_cached is True)
            (cache_hits_total if hit else cache_misses_total).labels(route).inc()
            etag = mark_cacheable(start, body, ttl, hit=hit)
            if if_none_match and _matches(if_none_match, etag):
                body = not_modified(start)
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def mark_cacheable(start: HTTPResponseStartEvent, body: bytes, ttl: int, *, hit: bool) -> str:
    """The validator and caching headers of a cacheable 200 (the same for both paths of a hit)."""
    headers = MutableScopeHeaders.from_message(start)
    etag = _etag(body, headers.get("content-encoding"))
    headers["ETag"] = etag
    headers["Cache-Control"] = f"private, max-age={ttl}"
    headers["Vary"] = VARY
    headers["X-Cache"] = "hit" if hit else "miss"
    return etag


def not_modified(start: HTTPResponseStartEvent) -> bytes:
    """Turn a 200 start into its 304; returns the (empty) body."""
    headers = MutableScopeHeaders.from_message(start)
    start["status"] = 304
    for name in ("content-length", "content-type", "content-encoding"):
        if name in headers:
            del headers[name]
    return b""


def etag_matches(if_none_match: str, etag: str) -> bool:
    return bool(if_none_match) and _matches(if_none_match, etag)
