"""Response-cache hits answered in one layer, in front of Litestar's router and middleware stack.

A hit through the normal stack passes the request timeout, authentication, rate limit, conditional
GET, response cache and compression layers, the guards and the route; most of that only carries
the request to a store lookup. This layer sits inside CORS and the observability middleware (so
CORS, request metrics, the access log, the request id and the security headers still wrap it) and
answers a GET to a cacheable route itself when the entry is there, doing what the stack does for a
hit, with the same code and in the same order:

1. route the request (Litestar's own memoised routing) and authenticate it (`Authenticator`: JWT or
   API key, the revocation list checked on every request, key use recorded);
2. run the route's guards; look the entry up under the response cache's own key (route, role,
   subject where the route asks, negotiated encoding, path and query: a viewer's and a developer's
   entries stay apart);
3. count the rate limits (every bucket, headers on the response), count the hit, and send the stored
   response with the conditional-GET headers (`ETag`, `Cache-Control`, `Vary`, `X-Cache: hit`) or
   its 304.

Anything else falls through to the normal stack: another method, a route that is not cacheable or
has middleware of its own, a missing, refused or failing credential, a failed guard, a client's
`no-cache`, a miss, a refusal by the rate limits. What it already did is handed on in the scope,
never done twice: the principal (the authentication middleware takes it as is) and the rate-limit
refusal (the rate-limit middleware raises it without counting again).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar._asgi.utils import is_valid_host
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send
from litestar.utils import normalize_path

from observatory_api.core.errors import RateLimited, Unavailable
from observatory_api.observability.metrics import cache_hits_total
from observatory_api.security.authentication import PREAUTHENTICATED, Authenticator
from observatory_api.security.rate_limit import PRECOUNTED, SEEN_BY_MIDDLEWARE, RateLimiter, with_headers
from observatory_api.security.response_cache import (
    etag_matches,
    mark_cacheable,
    mark_known_miss,
    no_cache_requested,
    not_modified,
)

# Decoded entries kept per worker, by key, up to this many bytes (stored and decoded); each is used
# only while the store still holds the same bytes, so an expiry, a purge or a refresh shows at once.
DECODED_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    """A stored response with the hit's headers applied once (a fresh list is sent each time)."""

    raw: bytes
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str
    not_modified_headers: list[tuple[bytes, bytes]]

    @property
    def size(self) -> int:
        return len(self.raw) + len(self.body)


class CachedReadFastPath:
    def __init__(
        self, app: ASGIApp, *, litestar: Litestar, authenticator: Authenticator, limiter: RateLimiter | None
    ) -> None:
        self.app = app
        self.litestar = litestar
        self.authenticator = authenticator
        self.limiter = limiter
        # The app's own middleware: a route that adds any of its own is left to the normal stack.
        self._app_middleware = len(litestar.middleware)
        self._plain: dict[int, bool] = {}
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._entry_bytes = 0
        self._hit_counters: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "GET" or not await self._answer(scope, send):
            await self.app(scope, receive, send)

    def _route(self, scope: Scope) -> HTTPRouteHandler | None:
        path = scope["path"]
        if scope.get("root_path") or normalize_path(path) != path:
            return None
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        if host is not None and not is_valid_host(host):
            return None
        try:
            _, handler, _, path_params, template = self.litestar.asgi_router.handle_routing(path=path, method="GET")
        except Exception:  # no route, no GET: the router answers it
            return None
        if not isinstance(handler, HTTPRouteHandler) or not self._is_plain(handler):
            return None
        # A TTL in seconds (apply_cache_ttls); False when the route or the cache is off.
        if isinstance(handler.cache, bool) or not isinstance(handler.cache, int):
            return None
        scope["route_handler"] = handler
        scope["path_template"] = template
        scope["path_params"] = path_params
        return handler

    def _is_plain(self, handler: HTTPRouteHandler) -> bool:
        plain = self._plain.get(id(handler))
        if plain is None:
            plain = self._plain[id(handler)] = len(handler.resolve_middleware()) == self._app_middleware
        return plain

    async def _answer(self, scope: Scope, send: Send) -> bool:
        handler = self._route(scope)
        if handler is None:
            return False
        request: Request[Any, Any, Any] = Request(scope)
        headers = request.headers
        if no_cache_requested(headers):
            return False
        try:
            principal = await self.authenticator.authenticate(request)
        except Exception:  # refused or unavailable: the normal stack answers (and counts) it
            return False
        if principal is None:
            return False
        scope["user"] = principal
        scope["auth"] = principal.kind
        scope[PREAUTHENTICATED] = principal  # type: ignore[literal-required]
        try:
            for guard in handler.resolve_guards():
                checked = guard(request, handler)
                if checked is not None:
                    await checked
        except Exception:
            return False
        config = self.litestar.response_cache_config
        key = (handler.cache_key_builder or config.key_builder)(request)
        raw = await config.get_store_from_app(self.litestar).get(key)
        if not raw:
            mark_known_miss(scope)  # the stack's own lookup would ask the store again
            return False
        entry = self._entry(key, raw, handler.cache if isinstance(handler.cache, int) else 0)
        if entry is None:
            return False
        if self.limiter is not None:
            store = self.litestar.state.security_store
            try:
                decision = await self.limiter.check(store, self.limiter.buckets(store, scope, principal))
            except (RateLimited, Unavailable) as refusal:
                scope[PRECOUNTED] = refusal  # type: ignore[literal-required]
                return False
            scope[SEEN_BY_MIDDLEWARE] = True  # type: ignore[literal-required]
            if decision.headers:
                send = with_headers(send, decision.headers)
        self._hits(scope["path_template"]).inc()
        if_none_match = headers.get("if-none-match", "")
        if etag_matches(if_none_match, entry.etag):
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 304,
                "headers": list(entry.not_modified_headers),
            }
            body = b""
        else:
            start = {"type": "http.response.start", "status": entry.status, "headers": list(entry.headers)}
            body = entry.body
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return True

    def _hits(self, route: str) -> Any:
        # The labelled child, looked up once per route (`labels()` takes a lock and builds a key).
        child = self._hit_counters.get(route)
        if child is None:
            child = self._hit_counters[route] = cache_hits_total.labels(route)
        return child

    def _entry(self, key: str, raw: bytes, ttl: int) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and (entry.raw is raw or entry.raw == raw):
            self._entries.move_to_end(key)
            return entry
        entry = _decode(raw, ttl)
        if entry is None:
            return None
        if (old := self._entries.pop(key, None)) is not None:
            self._entry_bytes -= old.size
        if entry.size <= DECODED_BYTES // 8:
            self._entries[key] = entry
            self._entry_bytes += entry.size
        while self._entry_bytes > DECODED_BYTES:
            self._entry_bytes -= self._entries.popitem(last=False)[1].size
        return entry


def _decode(raw: bytes, ttl: int) -> _Entry | None:
    """The stored messages (a 200 start and its body, as the response cache wrote them), or None."""
    try:
        messages = msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return None
    if not messages or messages[0].get("type") != "http.response.start" or messages[0].get("status") != 200:
        return None
    body = b"".join(m.get("body", b"") for m in messages[1:] if m.get("type") == "http.response.body")
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(bytes(name), bytes(value)) for name, value in messages[0].get("headers", ())],
    }
    etag = mark_cacheable(start, body, ttl, hit=True)
    headers = list(start["headers"])
    not_modified(start)
    return _Entry(raw, 200, headers, body, etag, list(start["headers"]))


def install_cache_fast_path(app: Litestar, *, authenticator: Authenticator, limiter: RateLimiter | None) -> None:
    """Wrap the routed app (exception handling and router), inside CORS: call before `install_cors`."""
    app.asgi_handler = CachedReadFastPath(app.asgi_handler, litestar=app, authenticator=authenticator, limiter=limiter)
