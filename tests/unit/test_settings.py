"""Settings: the YAML file, environment overrides, validation messages and the production checklist."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory_api.settings import ConfigError, load_settings, mask_url, masked
from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY

REPO_CONFIG = Path(__file__).resolve().parents[2] / "api-config.yml"
STRONG = STRONG_JWT_SECRET


def test_the_committed_config_file_loads_with_every_section() -> None:
    settings = load_settings(REPO_CONFIG, environ={})
    assert settings.server.port == 8080
    assert settings.server.metrics_port == 9090
    assert settings.rate_limit.roles == {"admin": 10_000, "developer": 1000, "viewer": 100}
    assert settings.auth.access_ttl_seconds == 3600
    assert settings.auth.refresh_ttl_seconds == 7 * 24 * 3600
    assert settings.database.url is None


def test_documented_environment_variables_override_the_file() -> None:
    environ = {
        "ENVIRONMENT": "staging",
        "API_PORT": "9000",
        "API_METRICS_PORT": "9100",
        "DATABASE_URL": "postgresql://u:p@db:5432/obs",
        "REDIS_URL": "redis://cache:6379/0",
        "JWT_SECRET": STRONG,
        "SECRET_KEY": STRONG_SECRET_KEY,
        "CORS_ORIGINS": "https://a.example, https://b.example",
        "GRAPHQL_ENABLED": "false",
        "GRAPHQL_PLAYGROUND": "true",
        "GRAPHQL_INTROSPECTION": "0",
        "RATE_LIMIT_ENABLED": "false",
        "RATE_LIMIT_REQUESTS": "77",
        "RATE_LIMIT_WINDOW": "30",
        "DB_READONLY_USER": "reader",
        "DB_READONLY_PASSWORD": "pw",
        "REDIS_PASSWORD": "rpw",
        "SENTRY_DSN": "https://key@sentry.example/1",
        "LOG_LEVEL": "debug",
    }
    s = load_settings(REPO_CONFIG, environ=environ)
    assert s.environment == "staging"
    assert (s.server.port, s.server.metrics_port) == (9000, 9100)
    assert s.database.url == "postgresql://u:p@db:5432/obs"
    assert s.redis.url == "redis://cache:6379/0"
    assert s.cors.origins == ("https://a.example", "https://b.example")
    assert (s.graphql.enabled, s.graphql.playground, s.graphql.introspection) == (False, True, False)
    assert (s.rate_limit.enabled, s.rate_limit.requests, s.rate_limit.window) == (False, 77, 30)
    assert (s.database.readonly_user, s.database.readonly_password) == ("reader", "pw")
    assert s.redis.password == "rpw"
    assert s.observability.sentry_dsn == "https://key@sentry.example/1"
    assert s.logging.level == "DEBUG"


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "jwt"
    secret.write_text(STRONG + "\n")
    assert load_settings(REPO_CONFIG, environ={"JWT_SECRET_FILE": str(secret)}).auth.jwt_secret == STRONG


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"API_PORT": "eighty"}, "server.port (API_PORT)"),
        ({"API_PORT": "70000"}, "server.port"),
        ({"RATE_LIMIT_ENABLED": "maybe"}, "rate_limit.enabled (RATE_LIMIT_ENABLED)"),
        ({"ENVIRONMENT": "prod"}, "environment (ENVIRONMENT)"),
        ({"LOG_LEVEL": "loud"}, "logging.level (LOG_LEVEL)"),
        ({"DATABASE_URL": "mysql://x"}, "database.url (DATABASE_URL)"),
        ({"API_METRICS_PORT": "8080"}, "server.metrics_port"),
        ({"JWT_SECRET_FILE": "/no/such/file"}, "JWT_SECRET_FILE"),
    ],
)
def test_a_wrong_value_names_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(REPO_CONFIG, environ=environ)
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "api-config.yml"
    config.write_text("server:\n  prot: 8080\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(config, environ={})


def production(**extra: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql://u:p@db/obs",
        "JWT_SECRET": STRONG,
        "SECRET_KEY": STRONG_SECRET_KEY,
        "CORS_ORIGINS": "https://app.example",
        **extra,
    }


def test_production_accepts_a_complete_configuration() -> None:
    assert load_settings(REPO_CONFIG, environ=production()).is_production


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"JWT_SECRET": "changeme"}, "JWT_SECRET"),
        ({"JWT_SECRET": "a" * 40}, "JWT_SECRET"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"GRAPHQL_PLAYGROUND": "true"}, "GRAPHQL_PLAYGROUND"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
    ],
)
def test_production_refuses_weak_or_unsafe_settings(extra: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(REPO_CONFIG, environ=production(**extra))


def test_masking_hides_every_secret() -> None:
    settings = load_settings(
        REPO_CONFIG, environ=production(DB_READONLY_PASSWORD="ro-secret", REDIS_URL="redis://:redis-secret@r:6379/0")
    )
    text = repr(masked(settings))
    for secret in (STRONG, "ro-secret", "redis-secret", ":p@"):
        assert secret not in text
    assert mask_url("postgresql://user:pw@host/db") == "postgresql://user:***@host/db"


def test_self_tracing_has_its_own_variable_and_ignores_the_sdk_one() -> None:
    # The ingest examples (README, docs/ingest.md) export OTEL_EXPORTER_OTLP_* in a shell that may start the server.
    sdk = load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:8080"})
    assert sdk.observability.otlp_endpoint is None
    own = load_settings(environ={"TRACING_OTLP_ENDPOINT": "http://collector:4318"})
    assert own.observability.otlp_endpoint == "http://collector:4318"
