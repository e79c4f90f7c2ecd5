"""X-Forwarded-For through the real app and the Redis rate limiter: the client IP comes from the
header only when the socket peer is a trusted proxy, and then from its rightmost untrusted hop."""

from __future__ import annotations

import httpx
import redis
from litestar.testing import TestClient

from observatory_api.settings import DatabaseSettings, RateLimitSettings, RedisSettings, ServerSettings
from tests.conftest import make_settings
from tests.integration.security.conftest import TEST_REDIS_URL, open_client

# Open to anonymous callers, so each request counts in its client IP's anonymous bucket.
OPEN_PATH = "/schema/openapi.json"
PROXIES = ("10.0.0.0/8",)
LIMIT = 2


def request_from(client: TestClient, peer: str, forwarded: str | None = None) -> httpx.Response:
    """One request whose socket peer is `peer` (the test client's own transport always says
    "testclient"), sent as a raw ASGI call on the app's event loop."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app, client=(peer, 40_000))
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            return await http.get(OPEN_PATH, headers=headers)

    with client.portal() as portal:
        return portal.call(send)


def remaining(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["ratelimit-limit"] == str(LIMIT)
    return response.headers["ratelimit-remaining"]


def ip_buckets(prefix: str) -> set[str]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        marker = f"{prefix}:ratelimit:ip:"
        return {key.decode().removeprefix(marker) for key in client.scan_iter(match=f"{marker}*", count=1000)}
    finally:
        client.close()


def test_forwarded_for_sets_the_ip_bucket_only_behind_trusted_proxies(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database,
        redis=redis_settings,
        server=ServerSettings(trusted_proxies=PROXIES),
        rate_limit=RateLimitSettings(anonymous_per_ip=LIMIT),
    )
    with open_client(settings) as client:
        # Behind a trusted proxy each forwarded client has its own bucket.
        assert remaining(request_from(client, "10.0.0.1", "198.51.100.1")) == "1"
        assert remaining(request_from(client, "10.0.0.1", "198.51.100.1")) == "0"
        assert request_from(client, "10.0.0.1", "198.51.100.1").status_code == 429
        assert remaining(request_from(client, "10.0.0.2", "198.51.100.2")) == "1"

        # A client that prepends addresses of its own choosing is still counted as itself: the
        # proxy appends the real address, and the rightmost hop that is not a proxy counts.
        spoofed = request_from(client, "10.0.0.1", "203.0.113.77, 198.51.100.1")
        assert spoofed.status_code == 429 and "retry-after" in spoofed.headers
        through_two_proxies = request_from(client, "10.0.0.1", "203.0.113.78, 198.51.100.1, 10.0.0.3")
        assert through_two_proxies.status_code == 429

        # From a peer that is not a trusted proxy the header is ignored: one bucket for the peer,
        # whatever it claims.
        assert remaining(request_from(client, "192.0.2.10", "198.51.100.3")) == "1"
        assert remaining(request_from(client, "192.0.2.10", "198.51.100.4")) == "0"
        assert request_from(client, "192.0.2.10", "198.51.100.5").status_code == 429
        # ... and the address it claimed kept its own budget.
        assert remaining(request_from(client, "10.0.0.1", "198.51.100.3")) == "1"

    assert ip_buckets(redis_settings.key_prefix) == {"198.51.100.1", "198.51.100.2", "198.51.100.3", "192.0.2.10"}


def test_without_trusted_proxies_forwarded_for_is_ignored(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database, redis=redis_settings, rate_limit=RateLimitSettings(anonymous_per_ip=LIMIT)
    )
    with open_client(settings) as client:
        assert remaining(request_from(client, "10.0.0.1", "198.51.100.1")) == "1"
        assert remaining(request_from(client, "10.0.0.1", "198.51.100.2")) == "0"
        assert request_from(client, "10.0.0.1").status_code == 429
    assert ip_buckets(redis_settings.key_prefix) == {"10.0.0.1"}
