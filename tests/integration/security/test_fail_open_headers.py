"""A request served without counting (Redis too slow: rate limits fail open) is not counted
afterwards against the client IP's anonymous limit by the hook for unrouted requests, even when
Redis answers again before the response is sent."""

from __future__ import annotations

import time

from observatory_api.settings import CacheSettings, DatabaseSettings, RateLimitSettings, RedisSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.security.conftest import PrivateRedis, open_client


def test_a_request_served_uncounted_gets_no_anonymous_limit_headers(
    migrated_database: DatabaseSettings, private_redis: PrivateRedis
) -> None:
    settings = make_settings(
        migrated_database,
        redis=RedisSettings(url=private_redis.url, key_prefix="uncounted"),
        rate_limit=RateLimitSettings(roles={"developer": 500}, anonymous_per_ip=7),
        # No cache: a hit's lookup would be the request's first Redis call (the one that times out),
        # and the rate limit would then be counted after Redis answers again.
        cache=CacheSettings(enabled=False),
    )
    headers = auth_headers(settings, "developer")
    admin = private_redis.client()
    with open_client(settings) as client:
        assert client.get("/api/v1/models", headers=headers).headers["ratelimit-limit"] == "500"
        # Redis holds every command for 1.6 s: the middleware's call gives up after 1 s (served
        # without counting); the response is sent while Redis answers again.
        admin.client_pause(1600, all=True)
        started = time.monotonic()
        response = client.get("/api/v1/models", headers=headers)
        assert time.monotonic() - started >= 1.0
    assert response.status_code == 200
    assert "ratelimit-limit" not in response.headers, dict(response.headers)
    assert not list(admin.scan_iter(match="uncounted:ratelimit:ip:*"))
