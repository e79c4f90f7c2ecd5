"""Whose budget a request spends, through the real app on Redis and on the in-process store: an
IPv6 client by its /64 (IPv4 by its address), and an API key once, however it is presented (the
key itself or a token exchanged from it)."""

from __future__ import annotations

import httpx
import pytest
from litestar.testing import TestClient

from observatory_api.settings import DatabaseSettings, RateLimitSettings, RedisSettings, ServerSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.security.conftest import create_key, open_client
from tests.integration.security.test_forwarded_for import ip_buckets

OPEN_PATH = "/schema/openapi.json"


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, redis_settings: RedisSettings) -> RedisSettings:
    """Redis (db 15, a private prefix), or no URL: the in-process store."""
    return redis_settings if request.param == "redis" else RedisSettings()


def call(
    client: TestClient, peer: str, *, method: str = "GET", path: str = OPEN_PATH, forwarded: str | None = None
) -> httpx.Response:
    """One request whose socket peer is `peer`, sent as a raw ASGI call on the app's event loop."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app, client=(peer, 40_000))
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            return await http.request(method, path, headers=headers)

    with client.portal() as portal:
        return portal.call(send)


def remaining(response: httpx.Response) -> str:
    assert response.status_code in (200, 401), response.text
    return response.headers["ratelimit-remaining"]


def test_ipv6_clients_share_their_64_and_ipv4_clients_count_per_address(
    migrated_database: DatabaseSettings, store: RedisSettings
) -> None:
    settings = make_settings(
        migrated_database,
        redis=store,
        server=ServerSettings(trusted_proxies=("10.0.0.0/8",)),
        rate_limit=RateLimitSettings(anonymous_per_ip=2, auth_per_ip=1),
    )
    with open_client(settings) as client:
        # Any address of one /64 spends one budget: rotating through the block gains nothing.
        assert remaining(call(client, "2001:db8:1:2::1")) == "1"
        assert remaining(call(client, "2001:db8:1:2:ffff:ffff:ffff:fffe")) == "0"
        assert call(client, "2001:db8:1:2::abcd").status_code == 429
        assert call(client, "10.0.0.1", forwarded="2001:db8:1:2:5::5").status_code == 429  # through a proxy too
        # The next /64 is another subscriber.
        assert remaining(call(client, "2001:db8:1:3::1")) == "1"
        # IPv4 stays per address; an IPv4-mapped IPv6 address is that IPv4 address.
        assert remaining(call(client, "192.0.2.1")) == "1"
        assert remaining(call(client, "192.0.2.1")) == "0"
        assert remaining(call(client, "192.0.2.2")) == "1"
        assert remaining(call(client, "::ffff:192.0.2.2")) == "0"
        # The per-IP limit of /api/v1/auth/* takes the /64 as well.
        guess = call(client, "2001:db8:9:9::1", method="POST", path="/api/v1/auth/token")
        assert guess.status_code == 401 and guess.headers["ratelimit-limit"] == "1"
        assert call(client, "2001:db8:9:9::2", method="POST", path="/api/v1/auth/token").status_code == 429
    if store.url is not None:
        assert ip_buckets(store.key_prefix) == {
            "2001:db8:1:2::/64",
            "2001:db8:1:3::/64",
            "2001:db8:9:9::/64",
            "192.0.2.1",
            "192.0.2.2",
        }


def test_a_key_and_the_tokens_exchanged_from_it_share_one_budget(
    migrated_database: DatabaseSettings, store: RedisSettings
) -> None:
    settings = make_settings(migrated_database, redis=store, rate_limit=RateLimitSettings(roles={"viewer": 6}))
    key = {"X-API-Key": create_key(settings, role="viewer")}
    with open_client(settings) as client:
        exchanged = client.post("/api/v1/auth/token", headers=key)
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.headers["ratelimit-limit"] == "6" and exchanged.headers["ratelimit-remaining"] == "5"
        token = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        # Key and token, alternately: one count, not one per credential kind.
        spent = [client.get("/api/v1/sessions", headers=credential) for credential in (key, token) * 3]
        assert [r.status_code for r in spent] == [200] * 5 + [429]
        assert [r.headers["ratelimit-remaining"] for r in spent[:5]] == ["4", "3", "2", "1", "0"]
        assert client.get("/api/v1/sessions", headers=key).status_code == 429
        assert client.get("/api/v1/sessions", headers=token).status_code == 429
        # A token that comes from no key is its subject's own budget.
        other = client.get("/api/v1/sessions", headers=auth_headers(settings, "viewer", subject="someone"))
        assert other.status_code == 200 and other.headers["ratelimit-remaining"] == "5"
