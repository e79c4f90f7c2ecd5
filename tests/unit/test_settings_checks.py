"""Where the service runs decides what it accepts: the production checklist, staging's secrets, a
development server reachable from other machines, CORS origins, workers without Redis; every
problem reported at once, enum and boolean errors with the accepted values."""

from __future__ import annotations

from pathlib import Path

import pytest

from observatory_api.settings import ConfigError, load_settings
from observatory_api.settings.errors import ConfigErrors
from observatory_api.settings.secret_rules import DEVELOPMENT_JWT_SECRET, DEVELOPMENT_SECRET_KEY
from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY

REPO_CONFIG = Path(__file__).resolve().parents[2] / "api-config.yml"
JWT, KEY = "auth.jwt_secret (JWT_SECRET)", "auth.secret_key (SECRET_KEY)"


def production(**extra: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql://u:p@db/obs",
        "JWT_SECRET": STRONG_JWT_SECRET,
        "SECRET_KEY": STRONG_SECRET_KEY,
        "CORS_ORIGINS": "https://app.example",
        **extra,
    }


def problems(environ: dict[str, str], **kwargs: bool) -> list[tuple[str, str]]:
    """Every (key, reason) `load_settings` refuses `environ` for; [] when it accepts it."""
    try:
        load_settings(REPO_CONFIG, environ=environ, **kwargs)
    except ConfigError as error:
        caught = error
    else:
        return []
    found = caught.problems if isinstance(caught, ConfigErrors) else [caught]
    # One problem: one line. Several: a heading, then one line each.
    assert str(caught).count("\n") == (len(found) if len(found) > 1 else 0)
    return [(p.key, p.reason) for p in found]


def keys(environ: dict[str, str], **kwargs: bool) -> list[str]:
    return [key for key, _ in problems(environ, **kwargs)]


def test_the_attack_runs_configuration_is_refused_with_every_problem_at_once() -> None:
    # What issue 20's production server accepted, all in one run.
    environ = production(
        JWT_SECRET="changeme-changeme-changeme-changeme",
        SECRET_KEY="changeme-changeme-changeme-changeme",
        CORS_ORIGINS="null",
        API_WORKERS="4",
        GRAPHQL_PLAYGROUND="true",
        RATE_LIMIT_ENABLED="false",
    )
    found = problems(environ)
    assert sorted(key for key, _ in found) == sorted(
        [
            JWT,
            KEY,
            JWT,  # equal to SECRET_KEY
            "cors.origins (CORS_ORIGINS)",
            "server.workers (API_WORKERS, serve --workers)",
            "graphql.playground (GRAPHQL_PLAYGROUND)",
            "rate_limit.enabled (RATE_LIMIT_ENABLED)",
        ]
    )
    text = repr(found)
    assert "changeme-changeme" not in text  # reasons never quote a secret
    assert "must differ from SECRET_KEY" in text and "REDIS_URL" in text and "`null`" in text


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ({"JWT_SECRET": DEVELOPMENT_JWT_SECRET}, JWT, "public sample or placeholder"),
        ({"SECRET_KEY": DEVELOPMENT_SECRET_KEY}, KEY, "public sample or placeholder"),
        ({"JWT_SECRET": DEVELOPMENT_SECRET_KEY}, JWT, "public sample or placeholder"),
        ({"SECRET_KEY": "changeme"}, KEY, "public sample or placeholder"),
        ({"JWT_SECRET": "x" * 48}, JWT, "distinct characters"),
        ({"SECRET_KEY": "k3y-abcdefghijklmnopqrstuvwxyz0123456789"}, KEY, "guessable"),
        ({"SECRET_KEY": "observatory" * 4}, KEY, "distinct characters"),
        ({"SECRET_KEY": "password1234567890password1234567890"}, KEY, "guessable"),
        ({"JWT_SECRET": "Ab1" * 5}, JWT, "fewer than 32 characters"),
        ({"SECRET_KEY": STRONG_JWT_SECRET}, JWT, "must differ from SECRET_KEY"),
        ({"CORS_ORIGINS": "*"}, "cors.origins (CORS_ORIGINS)", "wildcard"),
        ({"CORS_ORIGINS": "https://*.app.example"}, "cors.origins (CORS_ORIGINS)", "wildcard"),
        ({"CORS_ORIGINS": "https://app.example,null"}, "cors.origins (CORS_ORIGINS)", "`null`"),
        ({"CORS_ORIGINS": "NULL"}, "cors.origins (CORS_ORIGINS)", "`null`"),
        ({"CORS_ORIGINS": ""}, "cors.origins (CORS_ORIGINS)", "is empty"),
        ({"CORS_ORIGINS": " , "}, "cors.origins (CORS_ORIGINS)", "is empty"),
        ({"API_WORKERS": "2"}, "server.workers (API_WORKERS, serve --workers)", "need REDIS_URL"),
        ({"DATABASE_URL": "postgresql://observatory:changeme@db/obs"}, "database.url (DATABASE_URL)", "sample"),
        ({"DB_READONLY_PASSWORD": "changeme"}, "database.readonly_password (DB_READONLY_PASSWORD)", "sample"),
        ({"REDIS_URL": "redis://:changeme@r:6379/0"}, "redis.url (REDIS_URL)", "sample"),
        ({"REDIS_PASSWORD": "CHANGEME"}, "redis.password (REDIS_PASSWORD)", "sample"),
        ({"GRAPHQL_INTROSPECTION": "true"}, "graphql.introspection (GRAPHQL_INTROSPECTION)", "must be false"),
    ],
)
def test_production_refuses_each_unsafe_setting_by_name(extra: dict[str, str], key: str, reason: str) -> None:
    found = problems(production(**extra))
    assert any(k == key and reason in r for k, r in found), found


def test_production_accepts_workers_with_redis_and_key_files_without_jwt_secret(tmp_path: Path) -> None:
    assert problems(production(API_WORKERS="4", REDIS_URL="redis://:a-real-password@r:6379/0")) == []
    config = tmp_path / "api-config.yml"
    config.write_text("auth:\n  algorithm: RS256\n  private_key_file: k.pem\n  public_key_file: k.pub\n")
    # RS256 signs with the key files: no JWT_SECRET needed, SECRET_KEY still held to the rule.
    environ = production(JWT_SECRET="", SECRET_KEY=STRONG_SECRET_KEY)
    load_settings(config, environ=environ)
    with pytest.raises(ConfigError, match=r"auth\.secret_key \(SECRET_KEY\): is a public sample"):
        load_settings(config, environ={**environ, "SECRET_KEY": DEVELOPMENT_SECRET_KEY})


def test_staging_holds_secrets_and_passwords_to_the_rule_but_not_the_rest_of_the_checklist() -> None:
    staging = {"ENVIRONMENT": "staging", "JWT_SECRET": STRONG_JWT_SECRET, "SECRET_KEY": STRONG_SECRET_KEY}
    assert problems({**staging, "API_WORKERS": "2", "CORS_ORIGINS": "*"}) == []
    assert keys({**staging, "JWT_SECRET": DEVELOPMENT_JWT_SECRET}) == [JWT]
    assert keys({**staging, "SECRET_KEY": STRONG_JWT_SECRET}) == [JWT]
    assert keys({**staging, "REDIS_PASSWORD": "changeme"}) == ["redis.password (REDIS_PASSWORD)"]
    assert keys({"ENVIRONMENT": "staging"}) == [JWT, KEY]


def test_config_check_production_applies_the_checklist_to_any_environment() -> None:
    development = {"JWT_SECRET": "changeme", "SECRET_KEY": STRONG_SECRET_KEY}
    assert problems(development) == []
    assert keys(development, production_checklist=True) == [
        "cors.origins (CORS_ORIGINS)",  # the file's `*`
        JWT,
        "database.url (DATABASE_URL)",
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "observatory.internal"])
def test_development_on_a_reachable_address_needs_real_secrets(host: str) -> None:
    environ = {"ENVIRONMENT": "development", "API_HOST": host}
    found = problems(environ)
    assert [key for key, _ in found] == [JWT, KEY]
    assert all(f"listens on {host}, not a loopback address" in reason for _, reason in found)
    # The public placeholders, set by hand, are refused there too; real secrets are accepted.
    placeholders = {**environ, "JWT_SECRET": DEVELOPMENT_JWT_SECRET, "SECRET_KEY": DEVELOPMENT_SECRET_KEY}
    assert keys(placeholders) == [JWT, KEY]
    assert problems({**environ, "JWT_SECRET": STRONG_JWT_SECRET, "SECRET_KEY": STRONG_SECRET_KEY}) == []
    assert keys({**environ, "ENVIRONMENT": "test"}) == [JWT, KEY]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_development_on_loopback_keeps_the_placeholders(host: str) -> None:
    assert problems({"API_HOST": host}) == []


def test_cors_origins_must_be_origins_and_an_empty_variable_never_means_the_default(tmp_path: Path) -> None:
    assert keys({"CORS_ORIGINS": ""}) == ["cors.origins (CORS_ORIGINS)"]
    [(_, reason)] = problems({"CORS_ORIGINS": "https://app.example/, http://localhost:3000"})
    assert reason.startswith("https://app.example/: an origin is scheme://host[:port]")
    assert problems({"CORS_ORIGINS": "https://app.example, http://localhost:3000, null"}) == []
    # An empty list in the file is explicit (no origin is allowed), so production accepts it.
    config = tmp_path / "api-config.yml"
    config.write_text("cors:\n  origins: []\n")
    environ = {k: v for k, v in production().items() if k != "CORS_ORIGINS"}
    assert load_settings(config, environ=environ).cors.origins == ()


def test_every_type_error_is_reported_at_once_with_the_accepted_values() -> None:
    found = dict(
        problems(
            {
                "ENVIRONMENT": "prod",
                "RATE_LIMIT_ENABLED": "yes",
                "LOG_FORMAT": "xml",
                "API_PORT": "http",
                "GRAPHQL_PLAYGROUND": "on",
            }
        )
    )
    assert found["environment (ENVIRONMENT)"].endswith("expected one of development, production, staging, test")
    assert found["rate_limit.enabled (RATE_LIMIT_ENABLED)"].endswith("expected true or false (or 1 or 0)")
    assert found["graphql.playground (GRAPHQL_PLAYGROUND)"].endswith("expected true or false (or 1 or 0)")
    assert found["logging.format (LOG_FORMAT)"].endswith("expected one of console, json")
    assert found["server.port (API_PORT)"] == "Expected `int`, got `str`"
    assert len(found) == 5


def test_file_values_get_the_accepted_values_too(tmp_path: Path) -> None:
    config = tmp_path / "api-config.yml"
    config.write_text("auth:\n  algorithm: none\nlogging:\n  modules:\n    sqlalchemy: LOUD\nserver:\n  prot: 1\n")
    found = dict(problems_of_file(config))
    assert found["auth.algorithm"].endswith("expected one of ES256, HS256, HS384, HS512, RS256")
    assert found["logging.modules[...]"].endswith("expected one of CRITICAL, DEBUG, ERROR, INFO, WARNING")
    assert "prot" in found["server"]


def problems_of_file(config: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigErrors) as caught:
        load_settings(config, environ={})
    return [(p.key, p.reason) for p in caught.value.problems]


@pytest.mark.parametrize(("rows", "reason"), [(0, "must be positive, got 0"), (50_001, "must be at most 50000")])
def test_export_reads_are_positive_and_bounded(tmp_path: Path, rows: int, reason: str) -> None:
    config = tmp_path / "api-config.yml"
    config.write_text(f"query:\n  export_rows_per_read: {rows}\n")
    with pytest.raises(ConfigError, match=f"query.export_rows_per_read: {reason}"):
        load_settings(config, environ={})
