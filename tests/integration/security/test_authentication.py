"""Credentials over HTTP: who gets in, and every refusal as 401 problem JSON, counted by reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from jose import jwt

from observatory_api.security.tokens import TokenService
from observatory_api.settings import DatabaseSettings, RateLimitSettings, RedisSettings
from tests.conftest import TEST_AUTH, auth_headers, make_settings
from tests.integration.security.conftest import counter, create_key, open_client, revoke_key


@pytest.fixture
def settings(migrated_database: DatabaseSettings, redis_settings: RedisSettings):  # type: ignore[no-untyped-def]
    # The tight per-IP limit of /api/v1/auth/* is tested in test_rate_limits.py.
    return make_settings(migrated_database, redis=redis_settings, rate_limit=RateLimitSettings(auth_per_ip=1000))


def assert_401(response, reason_text: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith('Bearer realm="observatory"')
    if reason_text:
        assert reason_text in response.json()["detail"]


def test_nothing_is_read_without_a_credential_but_the_open_routes(settings) -> None:  # type: ignore[no-untyped-def]
    with open_client(settings) as client:
        before = counter("api_auth_failures_total", reason="missing")
        for path in ("/api/v1/traces", "/api/v1/spans", "/api/v1/sessions", "/api/v1/logs", "/api/v1/models"):
            assert_401(client.get(path))
        assert_401(client.post("/api/v1/traces/search", json={}))
        assert_401(client.get("/api/v1/admin/api-keys"))
        assert counter("api_auth_failures_total", reason="missing") == before + 7
        for path in ("/alive", "/ready", "/health", "/schema/openapi.json", "/schema/swagger"):
            assert client.get(path).status_code == 200, path
        # /health shows component detail only to an authenticated caller.
        assert client.get("/health").json() == {"status": "ok"}
        detailed = client.get("/health", headers=auth_headers(settings, "viewer")).json()
        assert detailed["components"]["database"]["status"] == "ok" and detailed["version"]


def test_forged_expired_and_misused_tokens_are_refused_by_reason(settings) -> None:  # type: ignore[no-untyped-def]
    tokens = TokenService.from_settings(settings)
    valid = tokens.issue(subject="mallory", role="viewer", kind="access").token
    claims = jwt.get_unverified_claims(valid)
    now = int(time.time())
    cases = {
        "signature": jwt.encode(claims | {"role": "admin"}, "a-guessed-secret-0123456789abcdefghij", algorithm="HS256"),
        "algorithm": jwt.encode(claims, TEST_AUTH.jwt_secret, algorithm="HS512"),
        "expired": tokens.issue(subject="m", role="viewer", kind="access", ttl=10, now=now - 3600).token,
        "not_yet_valid": tokens.issue(subject="m", role="viewer", kind="access", now=now + 3600).token,
        "token_type": tokens.issue(subject="m", role="viewer", kind="refresh").token,
        "crit": jwt.encode(claims, TEST_AUTH.jwt_secret, algorithm="HS256", headers={"crit": ["x"], "x": 1}),
        "malformed": "definitely.not.a-jwt",
    }
    with open_client(settings) as client:
        assert client.get("/api/v1/models", headers={"Authorization": f"Bearer {valid}"}).status_code == 200
        for reason, token in cases.items():
            before = counter("api_auth_failures_total", reason=reason)
            response = client.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"})
            assert_401(response)
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
            assert counter("api_auth_failures_total", reason=reason) == before + 1, reason
        assert_401(client.get("/api/v1/models", headers={"Authorization": "Basic dXNlcjpwdw=="}))
        # Headers no HTTP client should send are refused, not crashed on.
        assert client.get("/api/v1/models", headers={"Authorization": "Bearer " + "x" * 8000}).status_code == 401


def test_api_keys_work_until_revoked_or_expired_and_revocation_is_immediate(settings) -> None:  # type: ignore[no-untyped-def]
    key = create_key(settings, role="developer")
    expired = create_key(settings, role="developer", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    with open_client(settings) as client:
        assert client.get("/api/v1/models", headers={"X-API-Key": key}).status_code == 200
        # The lookup is now cached in Redis: revoking through the database alone would wait for the TTL...
        revoke_key(settings, key)
        # ...so revocation also drops the cache entry, as `observatory-api keys revoke` does.
        import asyncio

        from observatory_api.security.cli import drop_cached_keys

        asyncio.run(drop_cached_keys(settings, [key.split("_")[1]]))
        assert_401(client.get("/api/v1/models", headers={"X-API-Key": key}), "revoked")
        time.sleep(1.1)
        assert_401(client.get("/api/v1/models", headers={"X-API-Key": expired}), "expired")
        unknown = "obs_0123456789ab_" + "A" * 43
        assert_401(client.get("/api/v1/models", headers={"X-API-Key": unknown}), "not known")
        assert_401(client.get("/api/v1/models", headers={"X-API-Key": "sk-live-123"}))
        tampered = key[:-3] + ("AAA" if not key.endswith("AAA") else "BBB")
        assert_401(client.get("/api/v1/models", headers={"X-API-Key": tampered}))


def test_a_hot_key_costs_no_database_round_trip(settings) -> None:  # type: ignore[no-untyped-def]
    key = create_key(settings, role="viewer")
    with open_client(settings) as client:
        assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 200
        app = client.app
        statements: list[str] = []
        from sqlalchemy import event

        engine = app.state.resources.read_engine.sync_engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            for _ in range(3):
                assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()["role"] == "viewer"
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert not [s for s in statements if "api_keys" in s]


def test_token_exchange_refresh_rotation_reuse_and_logout(settings) -> None:  # type: ignore[no-untyped-def]
    key = create_key(settings, role="viewer")
    with open_client(settings) as client:
        assert_401(client.post("/api/v1/auth/token"))
        assert_401(client.post("/api/v1/auth/token", headers={"X-API-Key": "obs_0123456789ab_" + "B" * 43}))
        pair = client.post("/api/v1/auth/token", headers={"X-API-Key": key})
        assert pair.status_code == 200 and pair.headers["cache-control"] == "no-store"
        first = pair.json()
        assert first["token_type"] == "Bearer" and first["expires_in"] == 3600
        bearer = {"Authorization": f"Bearer {first['access_token']}"}
        me = client.get("/api/v1/auth/me", headers=bearer).json()
        assert (me["role"], me["kind"], me["content_redacted"]) == ("viewer", "jwt", True)
        assert me["rate_limit"]["requests"] == 100 and me["permissions"] == ["read"]

        second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        rotated = second.json()
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}).is_success
        # Reusing the old refresh token: refused, and the whole family (the new pair too) is revoked.
        before = counter("api_auth_failures_total", reason="refresh_reuse")
        assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}), "already used")
        assert counter("api_auth_failures_total", reason="refresh_reuse") == before + 1
        assert_401(client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}))
        assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}))
        assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": first["access_token"]}))

        # Logout denies the token (and its family) until they would expire.
        fresh = client.post("/api/v1/auth/token", headers={"X-API-Key": key}).json()
        fresh_bearer = {"Authorization": f"Bearer {fresh['access_token']}"}
        assert client.post("/api/v1/auth/revoke", headers=fresh_bearer).status_code == 204
        assert_401(client.get("/api/v1/models", headers=fresh_bearer), "revoked")
        assert_401(client.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}))
        # API keys are not logged out over HTTP.
        assert client.post("/api/v1/auth/revoke", headers={"X-API-Key": key}).status_code == 400

        # Tokens exchanged from a key die with the key.
        last = client.post("/api/v1/auth/token", headers={"X-API-Key": key}).json()
        revoke_key(settings, key)
        import asyncio

        from observatory_api.security.cli import drop_cached_keys

        asyncio.run(drop_cached_keys(settings, [key.split("_")[1]]))
        assert_401(client.get("/api/v1/models", headers={"Authorization": f"Bearer {last['access_token']}"}))


def test_malformed_refresh_bodies_are_400_not_500(settings) -> None:  # type: ignore[no-untyped-def]
    with open_client(settings) as client:
        assert (
            client.post(
                "/api/v1/auth/refresh", content=b"{not json", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        assert client.post("/api/v1/auth/refresh", json={"refresh": "x"}).status_code == 400
        assert client.post("/api/v1/auth/refresh", json=[1, 2]).status_code == 400
