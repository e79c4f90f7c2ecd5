"""Everything security adds to the app, built from the settings; `create_app` only passes it on.

The routes that issue tokens and manage keys are the `auth` feature's, mounted by `create_app`:
auth imports security, never the other way round."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.config.response_cache import ResponseCacheConfig
from litestar.middleware.base import DefineMiddleware
from litestar.stores.redis import RedisStore

from observatory_api.core.background import background_task
from observatory_api.redis_client import worker_timeout
from observatory_api.security.api_keys import secret_key_of
from observatory_api.security.authentication import AuthenticationMiddleware, Authenticator
from observatory_api.security.cache_fast_path import install_cache_fast_path
from observatory_api.security.headers import SendHook, security_headers_hook
from observatory_api.security.key_usage import KeyUsageRecorder
from observatory_api.security.limits import RequestTimeoutMiddleware
from observatory_api.security.rate_limit import (
    ClientAddress,
    RateLimiter,
    rate_limit_middleware,
    unrouted_rate_limit_hook,
)
from observatory_api.security.resources import security_resources
from observatory_api.security.response_cache import (
    STORE_NAME,
    ConditionalGetMiddleware,
    LocalCacheStore,
    ResilientCacheStore,
    apply_cache_ttls,
    response_cache_config,
)
from observatory_api.security.revocation import revocation_lifespan
from observatory_api.security.store import MemorySecurityStore, RedisSecurityStore, SecurityStore
from observatory_api.security.tokens import TokenService
from observatory_api.security.verified_tokens import VerifiedTokenCache
from observatory_api.settings import Settings

logger = logging.getLogger("observatory_api.security")
HOUSEKEEPING_SECONDS = 30.0


@dataclass
class Security:
    """The pieces `create_app` passes to Litestar."""

    state: dict[str, Any]
    middleware: list[Any]
    before_send: list[SendHook]
    lifespan: list[Callable[[Litestar], AbstractAsyncContextManager[None]]]
    response_cache_config: ResponseCacheConfig
    stores: dict[str, Any] = field(default_factory=dict)
    # Cache hits answered before the router (cache_fast_path.py); None when the cache or the fast path is off.
    fast_path: Callable[[Litestar], None] | None = None

    def install_fast_path(self, app: Litestar) -> None:
        """Call before `install_cors`: the fast path sits inside CORS, outside the router."""
        if self.fast_path is not None:
            self.fast_path(app)


def build_security(settings: Settings) -> Security:
    authenticator = Authenticator(
        tokens=TokenService.from_settings(settings),
        secret_key=secret_key_of(settings),
        key_cache_ttl=settings.auth.api_key_cache_ttl_seconds,
        verified_tokens=VerifiedTokenCache(settings.auth.verified_token_cache_seconds),
    )
    limiter = RateLimiter(settings.rate_limit, ClientAddress(settings.server.trusted_proxies))
    enabled = settings.rate_limit.enabled
    # Outermost first: the time limit covers everything; the rate limit needs the principal.
    middleware: list[Any] = [
        RequestTimeoutMiddleware(settings.server.request_timeout_seconds, settings.server.stream_timeout_seconds),
        DefineMiddleware(
            AuthenticationMiddleware,
            authenticator=authenticator,
            on_failure=limiter.on_auth_failure if enabled else None,
        ),
    ]
    if enabled:
        middleware.append(rate_limit_middleware(settings.rate_limit, limiter))
    middleware.append(ConditionalGetMiddleware())
    return Security(
        state={"authenticator": authenticator, "rate_limiter": limiter},
        middleware=middleware,
        before_send=[
            security_headers_hook(settings.security_headers),
            *([unrouted_rate_limit_hook(limiter)] if enabled else []),
        ],
        lifespan=[security_lifespan, revocation_lifespan],
        response_cache_config=response_cache_config(settings.cache),
        fast_path=functools.partial(
            install_cache_fast_path, authenticator=authenticator, limiter=limiter if enabled else None
        )
        if settings.cache.enabled and settings.cache.fast_path
        else None,
        # Replaced by the lifespan (Redis when configured); present so the name always resolves.
        stores={STORE_NAME: ResilientCacheStore(LocalCacheStore())},
    )


@asynccontextmanager
async def security_lifespan(app: Litestar) -> AsyncIterator[None]:
    """After the main lifespan: the security store and the response-cache store on the worker's
    Redis client (the main lifespan opens it, and closes it after this one ends)."""
    settings: Settings = app.state.settings
    resources = security_resources(app.state)
    prefix = settings.redis.key_prefix
    store: SecurityStore
    connection = resources.redis
    if connection is not None:
        store = RedisSecurityStore(connection.client, prefix, timeout=worker_timeout(settings.redis))
        # Connected, with the rate-limit script loaded, before the worker serves its first burst.
        await store.prepare()
        cache = ResilientCacheStore(RedisStore(connection.client, namespace=f"{prefix}:cache"))
    else:
        store = MemorySecurityStore(prefix)
        cache = ResilientCacheStore(LocalCacheStore())
    app.state.security_store = store
    # The owner engine when ingest is enabled.
    key_usage = KeyUsageRecorder(
        engine=resources.write_engine,
        store=store,
        interval_seconds=settings.auth.key_usage_interval_seconds,
    )
    app.state.key_usage = key_usage
    if not key_usage.enabled:
        logger.info("API key last_used_at is not recorded: no write engine (it comes with features.ingest)")
    app.stores.register(STORE_NAME, cache, allow_override=True)
    apply_cache_ttls(app, settings.cache)
    _warn_about_development_secrets(settings)
    try:
        async with background_task(_housekeeping(store, cache), name="observatory-security-housekeeping"):
            yield
    finally:
        # Before the main lifespan disposes of the write engine.
        await key_usage.drain()


async def _housekeeping(store: SecurityStore, cache: ResilientCacheStore) -> None:
    # In-memory stores drop expired keys only when read: per-IP counters would grow without this.
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        try:
            await store.delete_expired()
            await cache.delete_expired()
        except Exception:
            logger.exception("security housekeeping failed")


def _warn_about_development_secrets(settings: Settings) -> None:
    # Only development and test get this far without secrets (tokens.py and api_keys.py refuse otherwise).
    missing = []
    if not settings.auth.jwt_secret and settings.auth.algorithm.startswith("HS"):
        missing.append("JWT_SECRET")
    if not settings.auth.secret_key:
        missing.append("SECRET_KEY")
    if missing and settings.environment == "development":
        logger.warning(
            "no %s set: using development placeholders anyone can read in the source; never expose this service",
            " or ".join(missing),
        )
