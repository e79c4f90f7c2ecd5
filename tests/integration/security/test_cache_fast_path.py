"""Cache hits answered before the router (security/cache_fast_path.py) keep every guarantee of a
hit through the full stack: the same body and headers, authentication and revocation on every
request, role-partitioned entries, rate limits counted, metrics and the access log (SQLite,
PostgreSQL, Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.stores.base import Store
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from observatory_api.app import create_app
from observatory_api.security.cache_fast_path import CachedReadFastPath
from observatory_api.security.response_cache import STORE_NAME, ResilientCacheStore
from observatory_api.settings import CacheSettings, DatabaseSettings, FeatureSettings, RateLimitSettings, RedisSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.ingest.payloads import encoded, key_values, new_trace_id, span, trace_request
from tests.integration.security.conftest import counter, create_key
from tests.log_records import log_records

SPANS = "/api/v1/spans?limit=5"
# Differ by request or by time, never by path: the request id, the rate-limit budget, the date.
VARYING = {"x-request-id", "ratelimit-remaining", "ratelimit-reset", "date"}


class RouterCalls:
    """Counts the requests that reach the router below the fast path (a hit must not)."""

    def __init__(self, app: Litestar) -> None:
        layer: Any = app.asgi_handler
        while not isinstance(layer, CachedReadFastPath):
            layer = layer.app
        self.calls = 0
        inner = layer.app

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            self.calls += 1
            await inner(scope, receive, send)

        layer.app = counted


class CountedReads(Store):
    """The real cache store, its reads counted."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.reads = inner, 0

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        self.reads += 1
        return await self.inner.get(key, renew_for)

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        await self.inner.set(key, value, expires_in)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def delete_all(self) -> None:
        await self.inner.delete_all()

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def expires_in(self, key: str) -> int | None:
        return await self.inner.expires_in(key)


def open_fast(settings: Any) -> tuple[TestClient[Any], RouterCalls]:
    app = create_app(settings)
    return TestClient(app, raise_server_exceptions=False), RouterCalls(app)


def settings_for(database: DatabaseSettings, redis: RedisSettings, **sections: Any) -> Any:
    sections.setdefault("rate_limit", RateLimitSettings(roles={"developer": 1000, "viewer": 1000, "admin": 1000}))
    return make_settings(database, redis=redis, features=FeatureSettings(ingest=True), **sections)


def comparable(response: Any) -> tuple[int, bytes, dict[str, str]]:
    headers = {name: value for name, value in response.headers.items() if name not in VARYING}
    return response.status_code, response.content, headers


@pytest.mark.parametrize("encoding", ["identity", "gzip", "zstd"])
def test_a_hit_through_the_fast_path_equals_a_hit_through_the_stack(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings, encoding: str
) -> None:
    fast_settings = settings_for(migrated_database, redis_settings)
    slow_settings = settings_for(
        migrated_database,
        msgspec.structs.replace(redis_settings, key_prefix=f"{redis_settings.key_prefix}-slow"),
        cache=CacheSettings(fast_path=False),
    )
    headers = {**auth_headers(fast_settings, "developer"), "Accept-Encoding": encoding, "Origin": "https://ui.test"}
    answers = []
    for index, settings in enumerate((fast_settings, slow_settings)):
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            if index == 0:  # a page over compression's 1 KiB
                write_spans(client, settings, [_span_with_prompt("p" * 400) for _ in range(5)])
            assert client.get(SPANS, headers=headers).headers["x-cache"] == "miss"
            hit = client.get(SPANS, headers=headers)
            assert hit.headers["x-cache"] == "hit"
            revalidated = client.get(SPANS, headers={**headers, "If-None-Match": hit.headers["etag"]})
            assert revalidated.status_code == 304
            answers.append((comparable(hit), comparable(revalidated)))
    fast, slow = answers
    assert fast == slow
    (_, _, hit_headers), _ = fast
    assert hit_headers["access-control-allow-origin"] == "*"
    assert hit_headers["ratelimit-limit"] == "1000" and hit_headers["content-security-policy"]
    if encoding != "identity":
        assert hit_headers["content-encoding"] == encoding


def test_hits_skip_the_router_and_are_counted_and_logged(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = settings_for(migrated_database, redis_settings)
    headers = auth_headers(settings, "developer")
    client, router = open_fast(settings)
    with client:
        cache: ResilientCacheStore = client.app.stores.get(STORE_NAME)  # type: ignore[assignment]
        cache.inner = counted = CountedReads(cache.inner)
        assert client.get(SPANS, headers=headers).headers["x-cache"] == "miss"
        assert router.calls == 1
        assert counted.reads == 1  # the stack does not look a fast-path miss up again
        hits = counter("cache_hits_total", route="/api/v1/spans")
        requests = counter(
            "http_requests_total", method="GET", route="/api/v1/spans", status_class="2xx", role="developer"
        )
        with log_records() as records:
            for index in range(3):
                hit = client.get(SPANS, headers={**headers, "X-Request-ID": f"fast-hit-{index}"})
                assert hit.headers["x-cache"] == "hit" and hit.headers["x-request-id"] == f"fast-hit-{index}"
        assert router.calls == 1
        assert counter("cache_hits_total", route="/api/v1/spans") == hits + 3
        after = counter(
            "http_requests_total", method="GET", route="/api/v1/spans", status_class="2xx", role="developer"
        )
        assert after == requests + 3
        logged = [
            r
            for r in records
            if r.name == "observatory_api.access" and r.__dict__.get("request_id", "").startswith("fast-hit-")
        ]
        assert [(r.route, r.status, r.role) for r in logged] == [("/api/v1/spans", 200, "developer")] * 3
        # A client's no-cache, a bad credential and another method go through the stack.
        assert client.get(SPANS, headers={**headers, "Cache-Control": "no-cache"}).headers["x-cache"] == "miss"
        refused = client.get(SPANS, headers={"Authorization": "Bearer a.b.c"})
        assert refused.status_code == 401 and "www-authenticate" in refused.headers
        assert router.calls == 3


def test_a_revoked_token_is_refused_on_a_hit(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = settings_for(migrated_database, redis_settings, rate_limit=RateLimitSettings(auth_per_ip=1000))
    key = create_key(settings, role="developer")
    client, router = open_fast(settings)
    with client:
        pair = client.post("/api/v1/auth/token", headers={"X-API-Key": key}).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        client.get(SPANS, headers=bearer)
        calls = router.calls
        assert client.get(SPANS, headers=bearer).headers["x-cache"] == "hit"
        assert router.calls == calls
        assert client.post("/api/v1/auth/revoke", headers=bearer).status_code == 204
        refused = client.get(SPANS, headers=bearer)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        assert "x-cache" not in refused.headers


def _span_with_prompt(prompt: str) -> Any:
    start = int(datetime.now(UTC).timestamp() * 1e9)
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.prompt": prompt}
    return span(
        new_trace_id(),
        1,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000,
        attributes=key_values(attributes),
    )


def write_spans(client: TestClient[Any], settings: Any, spans: list[Any]) -> None:
    content, headers = encoded(trace_request(spans), "protobuf")
    written = client.post("/v1/traces", content=content, headers={**auth_headers(settings, "ingest"), **headers})
    assert written.status_code == 200, written.text


def test_viewer_and_developer_keys_never_share_an_entry(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = settings_for(migrated_database, redis_settings)
    canary = f"canary-{uuid.uuid4().hex}"
    developer, viewer = create_key(settings, role="developer"), create_key(settings, role="viewer")
    client, router = open_fast(settings)
    with client:
        write_spans(client, settings, [_span_with_prompt(canary)])
        for _ in range(2):
            seen = client.get(SPANS, headers={"X-API-Key": developer})
            assert canary in seen.text
        assert seen.headers["x-cache"] == "hit"
        calls = router.calls
        first = client.get(SPANS, headers={"X-API-Key": viewer})
        assert first.headers["x-cache"] == "miss" and router.calls == calls + 1
        again = client.get(SPANS, headers={"X-API-Key": viewer})
        assert again.headers["x-cache"] == "hit" and router.calls == calls + 1
        for response in (first, again):
            assert response.status_code == 200 and canary not in response.text
        # The same viewer key as a bearer value: the same role, the same entry, still without content.
        bearer = client.get(SPANS, headers={"Authorization": f"Bearer {viewer}"})
        assert bearer.headers["x-cache"] == "hit" and canary not in bearer.text


def test_rate_limits_are_counted_on_hits(migrated_database: DatabaseSettings, redis_settings: RedisSettings) -> None:
    settings = settings_for(migrated_database, redis_settings, rate_limit=RateLimitSettings(roles={"developer": 3}))
    headers = auth_headers(settings, "developer")
    client, router = open_fast(settings)
    with client:
        remaining = [client.get(SPANS, headers=headers).headers["ratelimit-remaining"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        assert router.calls == 1
        refused_before = counter("rate_limit_exceeded_total", scope="role")
        refused = client.get(SPANS, headers=headers)
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert refused.headers["ratelimit-remaining"] == "0" and "x-cache" not in refused.headers
        # Counted once, by the fast path; the stack raised its refusal without counting again.
        assert counter("rate_limit_exceeded_total", scope="role") == refused_before + 1
        status = counter(
            "http_requests_total", method="GET", route="/api/v1/spans", status_class="4xx", role="developer"
        )
        assert status >= 1
