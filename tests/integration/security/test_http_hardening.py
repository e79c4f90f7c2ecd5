"""CORS, security headers on every response, body size, malformed input and the request time limit."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from litestar import get
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.security.limits import RequestTimeoutMiddleware
from observatory_api.settings import ConfigError, CorsSettings, DatabaseSettings, ServerSettings, load_settings
from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY, auth_headers, make_settings
from tests.integration.security.conftest import open_client

ALLOWED = "https://app.example"
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, x-api-key"}


def test_cors_preflight_is_answered_for_listed_origins_only(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, cors=CorsSettings(origins=(ALLOWED,), allow_credentials=True))
    with open_client(settings) as client:
        allowed = client.options("/api/v1/traces", headers={"Origin": ALLOWED, **PREFLIGHT})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
        refused = client.options("/api/v1/traces", headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        # A real request from a listed origin exposes the rate-limit headers to the browser.
        response = client.get("/api/v1/models", headers={"Origin": ALLOWED, **auth_headers(settings)})
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert "ratelimit-remaining" in response.headers["access-control-expose-headers"].lower()
        other = client.get("/api/v1/models", headers={"Origin": "https://evil.example", **auth_headers(settings)})
        assert "access-control-allow-origin" not in other.headers


def vary_names(response: httpx.Response) -> list[str]:
    return [name.strip().lower() for value in response.headers.get_list("vary") for name in value.split(",")]


def test_cors_adds_origin_to_the_vary_of_cached_and_compressed_responses(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, cors=CorsSettings(origins=(ALLOWED,)))
    headers = {"Origin": ALLOWED, "Accept-Encoding": "identity", **auth_headers(settings)}
    with open_client(settings) as client:
        miss, hit = (client.get("/api/v1/models", headers=headers) for _ in range(2))
        assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
        for response in (miss, hit):
            assert response.headers["access-control-allow-origin"] == ALLOWED
            # The cache's entries and the origin's, each once.
            assert sorted(vary_names(response)) == ["accept-encoding", "authorization", "origin", "x-api-key"]
        # Compression's Vary survives too.
        compressed = client.get("/schema/openapi.json", headers={"Origin": ALLOWED, "Accept-Encoding": "gzip"})
        assert compressed.headers["content-encoding"] == "gzip"
        assert sorted(vary_names(compressed)) == ["accept-encoding", "origin"]
        # An origin not listed gets no CORS headers, and the response keeps its own Vary.
        other = client.get("/api/v1/models", headers={**headers, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        assert sorted(vary_names(other)) == ["accept-encoding", "authorization", "x-api-key"]


def test_cors_is_permissive_in_development_but_never_with_credentials(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, cors=CorsSettings(origins=("*",), allow_credentials=True))
    with open_client(settings) as client:
        response = client.options("/api/v1/traces", headers={"Origin": "https://any.example", **PREFLIGHT})
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers


def test_a_wildcard_origin_is_refused_at_start_up_in_production() -> None:
    environ = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql://u:p@db/obs",
        "JWT_SECRET": STRONG_JWT_SECRET,
        "SECRET_KEY": STRONG_SECRET_KEY,
        "CORS_ORIGINS": "https://a.example,*",
    }
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_settings(None, environ=environ)


EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "0",
    "referrer-policy": "no-referrer",
    "server": "observatory-api",
}


def test_security_headers_on_every_response(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database)
    with open_client(settings) as client:
        responses = {
            "ok": client.get("/api/v1/models", headers=auth_headers(settings)),
            "unauthorized": client.get("/api/v1/models"),
            "not_found": client.get("/no/such/route"),
            "method": client.delete("/api/v1/models", headers=auth_headers(settings)),
            "invalid": client.get("/api/v1/traces", params={"limit": 0}, headers=auth_headers(settings)),
            "probe": client.get("/alive"),
        }
        for name, response in responses.items():
            for header, value in EXPECTED.items():
                assert response.headers.get(header) == value, (name, header)
            assert response.headers["strict-transport-security"].startswith("max-age=31536000"), name
            assert response.headers["content-security-policy"].startswith("default-src 'none'"), name
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
        api_csp = responses["ok"].headers["content-security-policy"]
        assert "script-src" not in api_csp
        docs = client.get("/schema/swagger")
        assert docs.status_code == 200
        # Every script comes from the service: no other host, no inline script.
        assert "script-src 'self';" in docs.headers["content-security-policy"]
        assert "http" not in docs.headers["content-security-policy"]
        # Credentials and per-caller data are never stored by shared caches.
        assert responses["unauthorized"].headers["cache-control"] == "no-store"


def test_oversized_and_malformed_requests_are_4xx(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, server=ServerSettings(max_body_bytes=1024))
    headers = auth_headers(settings)
    with open_client(settings) as client:
        big = client.post(
            "/api/v1/traces/search",
            content=b"{" + b" " * 4096 + b"}",
            headers={**headers, "content-type": "application/json"},
        )
        assert big.status_code == 413
        assert big.headers["content-type"].startswith("application/problem+json")
        broken = client.post(
            "/api/v1/traces/search", content=b'{"filter": ', headers={**headers, "content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert client.get("/api/v1/models", headers={"X-API-Key": "\x7f" * 10}).status_code == 401
        assert client.get("/api/v1/models", headers={"Authorization": "Bearer"}).status_code == 401
        both = client.get("/api/v1/models", headers={**headers, "X-API-Key": "obs_x"})
        assert both.status_code == 401 and "either" in both.json()["detail"]


def test_a_request_over_the_time_limit_is_cancelled_with_503() -> None:
    from litestar import Litestar

    @get("/slow")
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    @get("/fast")
    async def fast() -> str:
        return "ok"

    app = Litestar([slow, fast], middleware=[RequestTimeoutMiddleware(0.2)])
    with TestClient(app) as client:
        response = client.get("/slow")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "0.2 s" in response.json()["detail"]
        assert client.get("/fast").text == "ok"


def test_the_time_limit_comes_from_the_settings(migrated_database: DatabaseSettings) -> None:
    app = create_app(make_settings(migrated_database, server=ServerSettings(request_timeout_seconds=7.5)))
    assert any(isinstance(m, RequestTimeoutMiddleware) and m.timeout_seconds == 7.5 for m in app.middleware)
