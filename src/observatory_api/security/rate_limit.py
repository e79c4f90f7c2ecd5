"""Rate limits on Litestar's RateLimitMiddleware interface, counted atomically in the security store.

Each request is counted in every bucket that applies to it: the caller's role limit (or the
client IP's anonymous limit), the endpoint's limit for that caller, and the per-IP limit of
`/api/v1/auth/*`. The caller is the API key behind the credential when there is one (the key
itself, or a token exchanged from it: one budget, not one per credential kind), else the token's
subject. Per-IP buckets take an IPv4 address whole and an IPv6 address by its /64 network, the
block one subscriber gets: rotating addresses inside it is free. One Redis script checks and
counts them all, so several workers and instances share each limit exactly. Every limited response
carries `RateLimit-Limit/Remaining/Reset` (the tightest bucket); a refusal is 429 problem JSON
with `Retry-After`.

Requests no route matches (404, 405) never reach the middleware: Litestar answers them before any
middleware runs, so before authentication. `unrouted_rate_limit_hook` counts them against the
client IP's anonymous limit and adds its headers. They keep their 404/405 once that limit is used
up (nothing is served behind them), but they use up the budget of the IP's anonymous calls.
Probes and CORS preflights are neither counted nor given headers: no limit applies to them.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from observatory_api.core.errors import RateLimited, Unavailable
from observatory_api.core.vocabulary import AUTH_PREFIX
from observatory_api.observability.metrics import (
    rate_limit_backend_errors_total,
    rate_limit_exceeded_total,
    rate_limit_requests_allowed,
)
from observatory_api.security.headers import SendHook
from observatory_api.security.permissions import Principal
from observatory_api.security.store import SecurityStore, StoreUnavailable
from observatory_api.settings import RateLimitSettings

logger = logging.getLogger("observatory_api.security.rate_limit")
AUTH_ROUTES = f"{AUTH_PREFIX}/"
# Probes must never be throttled.
EXCLUDED = ["^/alive$", "^/ready$", "^/health$"]
# One subscriber usually gets a whole /64 (RFC 6177): per-address IPv6 buckets are free to rotate past.
IPV6_PREFIX = 64


@dataclass(frozen=True, slots=True)
class Bucket:
    scope: str  # metric label: role, anonymous, endpoint, auth_ip
    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    headers: dict[str, str]


class ClientAddress:
    """The client IP: the socket peer, or the X-Forwarded-For hop just before the trusted proxies."""

    def __init__(self, trusted_proxies: tuple[str, ...]) -> None:
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
        hops = [hop.strip() for line in forwarded for hop in line.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # a malformed header from a trusted proxy: fall back to the socket
        return peer


@functools.lru_cache(maxsize=4096)
def ip_bucket(address: str) -> str:
    """The per-IP bucket of `address`: an IPv4 address itself, an IPv6 address's /64 network
    (memoised: parsing with `ipaddress` on every request costs more than the rest of the check)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # no IP (a test client's name): counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def caller_bucket(principal: Principal) -> str:
    """Whose budget a request spends: the API key behind it (presented, or exchanged for the
    token), else the token's subject."""
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"{principal.kind}:{principal.subject}"


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, client_address: ClientAddress) -> None:
        self.settings = settings
        self.client_address = client_address

    def buckets(self, store: SecurityStore, scope: Scope, principal: Principal | None) -> list[Bucket]:
        settings = self.settings
        template = scope.get("path_template") or scope.get("path", "")
        ip = ip_bucket(self.client_address(scope))
        if principal is not None:
            caller = caller_bucket(principal)
            limit = settings.roles.get(principal.role, settings.requests)
            buckets = [Bucket("role", store.key("ratelimit", "caller", caller), limit)]
        else:
            caller = f"ip:{ip}"
            buckets = [Bucket("anonymous", store.key("ratelimit", "ip", ip), settings.anonymous_per_ip)]
        if template in settings.endpoints:
            endpoint_key = store.key("ratelimit", "endpoint", template, caller)
            buckets.append(Bucket("endpoint", endpoint_key, settings.endpoints[template]))
        if template.startswith(AUTH_ROUTES):
            buckets.append(Bucket("auth_ip", store.key("ratelimit", "auth-ip", ip), settings.auth_per_ip))
        return buckets

    async def check(self, store: SecurityStore, buckets: list[Bucket]) -> Decision:
        """Count the request; raise RateLimited (429) or, failing closed, Unavailable (503)."""
        window = self.settings.window
        try:
            result = await store.hit([(b.key, b.limit) for b in buckets], window)
        except StoreUnavailable:
            rate_limit_backend_errors_total.inc()
            if self.settings.fail_open:
                return Decision(allowed=True, headers={})
            raise Unavailable(
                "rate limits cannot be checked; try again shortly", headers={"Retry-After": "1"}
            ) from None
        # The tightest bucket speaks for the response.
        pairs = list(zip(buckets, result.counts, strict=True))
        if result.allowed:
            bucket, count = min(pairs, key=lambda p: (p[0].limit - p[1].count, p[0].limit))
        else:
            bucket, count = next((b, c) for b, c in pairs if c.count >= b.limit)
        reset = max(1, math.ceil(count.reset_ms / 1000))
        headers = {
            "RateLimit-Policy": f"{bucket.limit};w={window}",
            "RateLimit-Limit": str(bucket.limit),
            "RateLimit-Remaining": str(max(0, bucket.limit - count.count)),
            "RateLimit-Reset": str(reset),
        }
        if not result.allowed:
            rate_limit_exceeded_total.labels(bucket.scope).inc()
            raise RateLimited(
                f"the {bucket.scope} limit of {bucket.limit} requests per {window} s is used up; retry in {reset} s",
                headers={**headers, "Retry-After": str(reset)},
            )
        rate_limit_requests_allowed.labels(bucket.scope).inc()
        return Decision(allowed=True, headers=headers)

    async def on_auth_failure(self, scope: Scope, _: Any) -> dict[str, str]:
        """A refused credential counts against the client IP (429 once guessing goes on too long)."""
        store: SecurityStore = scope["litestar_app"].state.security_store
        return (await self.check(store, self.buckets(store, scope, None))).headers


# A scope key the middleware sets on every request it handled.
SEEN_BY_MIDDLEWARE = "observatory_rate_limit_seen"
# A refusal already counted for this request (by the cache fast path): raised, not counted again.
PRECOUNTED = "observatory_rate_limit_refusal"


class AtomicRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's middleware and headers; the counting is RateLimiter's atomic store update."""

    def __init__(self, app: ASGIApp, config: RateLimitConfig, limiter: RateLimiter) -> None:
        super().__init__(app, config)
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        store: SecurityStore = scope["litestar_app"].state.security_store
        user = scope.get("user")
        principal = user if isinstance(user, Principal) else None
        refusal = scope.get(PRECOUNTED)
        if isinstance(refusal, (RateLimited, Unavailable)):
            raise refusal
        decision = await self.limiter.check(store, self.limiter.buckets(store, scope, principal))
        # Seen here, counted or served without counting (the store down, failing open): never
        # counted again by the hook against the client IP's anonymous limit.
        scope[SEEN_BY_MIDDLEWARE] = True  # type: ignore[literal-required]
        if decision.headers:
            send = with_headers(send, decision.headers)
        await self.app(scope, receive, send)


def with_headers(send: Send, headers: dict[str, str]) -> Send:
    # Encoded once and put in the raw header list in one pass (every request passes here).
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    names = frozenset(name for name, _ in encoded)

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(name, value) for name, value in message.get("headers") or () if name.lower() not in names]
            message["headers"] = [*kept, *encoded]
        await send(message)

    return wrapped


def unrouted_rate_limit_hook(limiter: RateLimiter) -> SendHook:
    """A `before_send` hook: counts and labels the responses the middleware never saw."""
    exempt = re.compile("|".join(EXCLUDED))

    async def add_rate_limit_headers(message: Message, scope: Scope) -> None:
        # The middleware's mark first: most responses have it, and it costs no scan of the headers.
        if (
            message["type"] != "http.response.start"
            or scope.get("method") == "OPTIONS"
            or scope.get(SEEN_BY_MIDDLEWARE)
        ):
            return
        headers = MutableScopeHeaders.from_message(message)
        if "ratelimit-limit" in headers or exempt.match(scope.get("path", "")):
            return
        store: SecurityStore | None = getattr(scope["litestar_app"].state, "security_store", None)
        if store is None:
            return
        try:
            found = (await limiter.check(store, limiter.buckets(store, scope, None))).headers
        except RateLimited as exc:
            # Over the limit: the response is already decided, it only reports the budget.
            found = {name: value for name, value in exc.headers.items() if name.startswith("RateLimit-")}
        except Unavailable:
            return  # failing closed has nothing to refuse here; without the store there is no budget to report
        for name, value in found.items():
            headers[name] = value

    return add_rate_limit_headers


def rate_limit_middleware(settings: RateLimitSettings, limiter: RateLimiter) -> DefineMiddleware:
    """The middleware definition for `Litestar(middleware=[...])`."""
    config = RateLimitConfig(
        rate_limit=("minute", settings.requests),
        exclude=EXCLUDED,
        middleware_class=AtomicRateLimitMiddleware,
    )
    return DefineMiddleware(AtomicRateLimitMiddleware, config=config, limiter=limiter)
