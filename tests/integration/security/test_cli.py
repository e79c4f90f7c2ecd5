"""`observatory-api keys ...` and `token create`, run as an operator runs them, against a live app."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import load_settings
from tests.integration.security.conftest import TEST_REDIS_URL
from tests.integration.test_cli import STRONG, STRONG_KEY, run_cli


def test_keys_create_list_revoke_and_token_create(tmp_path: Path, redis_settings) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "api-config.yml"
    database = tmp_path / "observatory.db"
    # Ingest gives the app the owner engine that records last_used_at.
    config.write_text(
        f"redis:\n  key_prefix: {redis_settings.key_prefix}\ndatabase:\n  sqlite_path: {database}\n"
        "features:\n  ingest: true\n"
    )
    env = {"OBSERVATORY_CONFIG": str(config), "SECRET_KEY": STRONG, "JWT_SECRET": STRONG, "REDIS_URL": TEST_REDIS_URL}

    created = run_cli("keys", "create", "--name", "ci", "--role", "viewer", "--expires", "30d", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("obs_") and "\n" not in key
    assert "shown only now" in created.stderr and key not in created.stderr

    listed = run_cli("keys", "list", cwd=tmp_path, env=env)
    prefix = key.split("_")[1]
    assert prefix in listed.stdout and "viewer" in listed.stdout and "active" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout
    assert "last used" in listed.stdout
    assert _line_of(listed.stdout, prefix).split()[-2:] == ["never", "ci"]  # expires in 30 days, never used

    environ = {**env, "DATABASE_URL": ""}
    settings = load_settings(config, environ=environ)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()["role"] == "viewer"
        revoked = run_cli("keys", "revoke", prefix, cwd=tmp_path, env=env)
        assert revoked.returncode == 0, revoked.stderr
        # The cached lookup was dropped from Redis: refused at once, not after the cache TTL.
        refused = client.get("/api/v1/auth/me", headers={"X-API-Key": key})
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        assert "revoked" in run_cli("keys", "list", cwd=tmp_path, env=env).stdout

        too_long = run_cli("token", "create", "--sub", "ops", "--role", "admin", "--ttl", "3601", cwd=tmp_path, env=env)
        assert too_long.returncode == 2 and not too_long.stdout
        assert "--ttl must be between 1 and 3600 seconds (auth.access_ttl_seconds), got 3601" in too_long.stderr
        minted = run_cli("token", "create", "--sub", "ops", "--role", "admin", "--ttl", "120", cwd=tmp_path, env=env)
        assert minted.returncode == 0, minted.stderr
        bearer = {"Authorization": f"Bearer {minted.stdout.strip()}"}
        me = client.get("/api/v1/auth/me", headers=bearer).json()
        assert (me["subject"], me["role"]) == ("ops", "admin")
        assert me["expires_at"] is not None
        [listed_key] = client.get("/api/v1/admin/api-keys", headers=bearer).json()["data"]
        assert listed_key["prefix"] == prefix and listed_key["last_used_at"] is not None
    # The app wrote last_used_at when the key was used.
    used = _line_of(run_cli("keys", "list", cwd=tmp_path, env=env).stdout, prefix)
    assert "never" not in used and "revoked" in used

    assert run_cli("keys", "revoke", "nope", cwd=tmp_path, env=env).returncode == 1
    assert run_cli("keys", "create", "--name", "x", "--role", "root", cwd=tmp_path, env=env).returncode == 2
    past = run_cli(
        "keys", "create", "--name", "x", "--role", "viewer", "--expires", "2000-01-01", cwd=tmp_path, env=env
    )
    assert past.returncode == 2 and "past" in past.stderr


def _line_of(listing: str, prefix: str) -> str:
    [line] = [line for line in listing.splitlines() if prefix in line]
    return line


def test_config_check_production_enforces_rate_limits_and_introspection(tmp_path: Path) -> None:
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql://u:p@h/d",
        "JWT_SECRET": STRONG,
        "SECRET_KEY": STRONG_KEY,
        "CORS_ORIGINS": "https://a.example",
    }
    assert run_cli("config", "check", "--production", cwd=tmp_path, env=env).returncode == 0
    no_limits = run_cli("config", "check", cwd=tmp_path, env={**env, "RATE_LIMIT_ENABLED": "false"})
    assert no_limits.returncode == 2 and "RATE_LIMIT_ENABLED" in no_limits.stderr
    introspection = run_cli("config", "check", cwd=tmp_path, env={**env, "GRAPHQL_INTROSPECTION": "true"})
    assert introspection.returncode == 2 and "GRAPHQL_INTROSPECTION" in introspection.stderr


def test_keys_revoke_without_redis_url_says_the_cached_key_stays_valid(tmp_path: Path) -> None:
    env = {"SECRET_KEY": STRONG, "JWT_SECRET": STRONG}
    created = run_cli("keys", "create", "--name", "ci", "--role", "viewer", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    prefix = created.stdout.strip().split("_")[1]

    revoked = run_cli("keys", "revoke", prefix, cwd=tmp_path, env=env)

    assert revoked.returncode == 0, revoked.stderr
    assert "WARNING: no REDIS_URL in this shell" in revoked.stderr
    assert "for up to 60 s" in revoked.stderr
    with_redis = run_cli("keys", "create", "--name", "ci2", "--role", "viewer", cwd=tmp_path, env=env)
    second = with_redis.stdout.strip().split("_")[1]
    quiet = run_cli("keys", "revoke", second, cwd=tmp_path, env={**env, "REDIS_URL": TEST_REDIS_URL})
    assert quiet.returncode == 0 and "WARNING" not in quiet.stderr
