"""Rate limits counted atomically in Redis: exact across app instances, per role, endpoint and IP,
with headers on every response, 429 problem JSON with Retry-After, and fail-open without Redis."""

from __future__ import annotations

import asyncio
import time

from litestar.testing import AsyncTestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, RateLimitSettings, RedisSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.security.conftest import PrivateRedis, counter, open_client


def limits(**overrides: object) -> RateLimitSettings:
    return RateLimitSettings(**overrides)  # type: ignore[arg-type]


async def test_exactly_n_pass_across_two_app_instances_sharing_redis(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(migrated_database, redis=redis_settings, rate_limit=limits(roles={"developer": 20}))
    headers = auth_headers(settings, "developer", subject="shared-caller")
    async with AsyncTestClient(create_app(settings)) as one, AsyncTestClient(create_app(settings)) as two:
        responses = await asyncio.gather(*(c.get("/api/v1/models", headers=headers) for c in [one, two] * 45))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 20, statuses
    assert statuses.count(429) == 70
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["title"] == "Too many requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "20" and refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-policy"] == "20;w=60"
    # Another caller of the same role has a budget of its own.
    async with AsyncTestClient(create_app(settings)) as three:
        other = await three.get("/api/v1/models", headers=auth_headers(settings, "developer", subject="other"))
    assert other.status_code == 200 and other.headers["ratelimit-remaining"] == "19"


def test_every_response_carries_the_headers_and_roles_get_their_own_limits(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database, redis=redis_settings, rate_limit=limits(roles={"viewer": 3, "admin": 50})
    )
    viewer, admin = auth_headers(settings, "viewer"), auth_headers(settings, "admin")
    with open_client(settings) as client:
        remaining = []
        for _ in range(3):
            response = client.get("/api/v1/sessions", headers=viewer)
            assert response.status_code == 200
            assert response.headers["ratelimit-limit"] == "3"
            assert 0 < int(response.headers["ratelimit-reset"]) <= 60
            remaining.append(response.headers["ratelimit-remaining"])
        assert remaining == ["2", "1", "0"]
        before = counter("rate_limit_exceeded_total", scope="role")
        assert client.get("/api/v1/sessions", headers=viewer).status_code == 429
        assert counter("rate_limit_exceeded_total", scope="role") == before + 1
        # A 404 from a handler is counted and carries the headers too.
        missing = client.get("/api/v1/traces/" + "0" * 32, headers=admin)
        assert missing.status_code == 404 and missing.headers["ratelimit-limit"] == "50"
        # Probes are never throttled.
        for _ in range(5):
            assert client.get("/alive").status_code == 200


def test_per_endpoint_limits_by_route_template(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database, redis=redis_settings, rate_limit=limits(endpoints={"/api/v1/traces/{trace_id}": 2})
    )
    headers = auth_headers(settings, "developer")
    with open_client(settings) as client:
        # Different ids, one route template: one budget.
        assert client.get("/api/v1/traces/" + "1" * 32, headers=headers).status_code == 404
        second = client.get("/api/v1/traces/" + "2" * 32, headers=headers)
        assert second.status_code == 404 and second.headers["ratelimit-limit"] == "2"
        assert second.headers["ratelimit-remaining"] == "0"
        third = client.get("/api/v1/traces/" + "3" * 32, headers=headers)
        assert third.status_code == 429 and "endpoint limit" in third.json()["detail"]
        assert client.get("/api/v1/models", headers=headers).status_code == 200


def test_anonymous_callers_and_credential_guessing_are_limited_per_ip(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database, redis=redis_settings, rate_limit=limits(anonymous_per_ip=4, auth_per_ip=2)
    )
    with open_client(settings) as client:
        # /api/v1/auth/*: two attempts per IP, then 429 even with a well-formed key.
        guess = {"X-API-Key": "obs_0123456789ab_" + "C" * 43}
        first = client.post("/api/v1/auth/token", headers=guess)
        assert first.status_code == 401 and first.headers["ratelimit-limit"] == "2"
        assert client.post("/api/v1/auth/token", headers=guess).status_code == 401
        refused = client.post("/api/v1/auth/token", headers=guess)
        assert refused.status_code == 429 and "retry-after" in refused.headers
        # Bad tokens elsewhere count against the IP's anonymous budget: 401s, then 429.
        statuses = [
            client.get("/api/v1/models", headers={"Authorization": "Bearer x.y.z"}).status_code for _ in range(5)
        ]
        assert statuses[:1] == [401] and statuses[-1] == 429
        # The docs are open, and limited per IP like any anonymous call.
        assert client.get("/schema/openapi.json").status_code == 429


def test_unmatched_routes_are_counted_per_ip_and_carry_the_headers_probes_do_not(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(migrated_database, redis=redis_settings, rate_limit=limits(anonymous_per_ip=3))
    admin = auth_headers(settings, "admin")
    with open_client(settings) as client:
        # No route, or no such method on a route: answered before authentication, so counted
        # against the client IP's anonymous limit, with its headers.
        unmatched = [
            client.get("/api/v1/no-such-thing", headers=admin),
            client.post("/api/v1/models", headers=admin),
            client.get("/not-the-api"),
        ]
        assert [r.status_code for r in unmatched] == [404, 405, 404]
        assert [r.headers["ratelimit-remaining"] for r in unmatched] == ["2", "1", "0"]
        for response in unmatched:
            assert response.headers["ratelimit-limit"] == "3"
            assert 0 < int(response.headers["ratelimit-reset"]) <= 60
        # Past the limit they keep their 404 and say the budget is spent...
        spent = client.get("/api/v1/still-nothing")
        assert spent.status_code == 404 and spent.headers["ratelimit-remaining"] == "0"
        assert "retry-after" not in spent.headers
        # ...which the IP's routed anonymous calls feel.
        assert client.get("/schema/openapi.json").status_code == 429
        # Probes and CORS preflights are neither limited nor labelled with a limit.
        for path in ("/alive", "/ready", "/health"):
            probe = client.get(path)
            assert probe.status_code == 200, path
            assert not any(name.startswith("ratelimit-") for name in probe.headers), path
        preflight = client.options(
            "/api/v1/models", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"}
        )
        assert not any(name.startswith("ratelimit-") for name in preflight.headers)
        # Authenticated calls have their own budget, untouched by the unmatched ones.
        assert client.get("/api/v1/models", headers=admin).headers["ratelimit-limit"] == "10000"


def test_fail_open_when_redis_stops_and_never_hang(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    settings = make_settings(
        migrated_database, redis=RedisSettings(url=private_redis.url), rate_limit=limits(roles={"developer": 100})
    )
    headers = auth_headers(settings, "developer")
    with open_client(settings) as client:
        assert client.get("/api/v1/models", headers=headers).headers["ratelimit-remaining"] == "99"
        private_redis.kill()
        before = counter("rate_limit_backend_errors_total")
        started = time.monotonic()
        for _ in range(5):
            response = client.get("/api/v1/models", headers=headers)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers
        assert time.monotonic() - started < 5
        assert counter("rate_limit_backend_errors_total") >= before + 1
        assert client.get("/health", headers=headers).json()["status"] == "degraded"


def test_fail_closed_when_configured(migrated_database: DatabaseSettings) -> None:
    # Nothing listens on port 1.
    settings = make_settings(
        migrated_database, redis=RedisSettings(url="redis://127.0.0.1:1/0"), rate_limit=limits(fail_open=False)
    )
    with open_client(settings) as client:
        response = client.get("/api/v1/models", headers=auth_headers(settings, "developer"))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_rate_limiting_can_be_switched_off(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, rate_limit=limits(enabled=False, roles={"developer": 1}))
    with open_client(settings) as client:
        for _ in range(3):
            response = client.get("/api/v1/models", headers=auth_headers(settings, "developer"))
            assert response.status_code == 200 and "ratelimit-limit" not in response.headers
