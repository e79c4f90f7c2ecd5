"""Typed, frozen settings: `api-config.yml` first, then environment variables.

Nothing here runs at import time; `load_settings()` is called by the CLI and by tests,
and `create_app(settings)` receives the result.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

Environment = Literal["development", "test", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid configuration: {key}: {reason}")


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    metrics_port: int = 9090
    # Addresses whose X-Forwarded-For is trusted; empty means use the socket address.
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    request_timeout_seconds: float = 30.0


class DatabaseSettings(_Section):
    # None selects the embedded SQLite default at `sqlite_path`.
    url: str | None = None
    sqlite_path: str = "observatory.db"
    readonly_user: str | None = None
    readonly_password: str | None = None
    pool_size: int = 10
    max_overflow: int = 5
    pool_timeout_seconds: float = 5.0
    statement_timeout_ms: int = 15_000
    # TimescaleDB policies, applied by the migration only when the extension is present.
    compress_after_days: int = 7
    retention_days: int = 90


class RedisSettings(_Section):
    # None selects Litestar's in-process memory stores.
    url: str | None = None
    password: str | None = None
    socket_timeout_seconds: float = 0.25
    key_prefix: str = "observatory"


class AuthSettings(_Section):
    jwt_secret: str | None = None
    secret_key: str | None = None
    algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    private_key_file: str | None = None
    public_key_file: str | None = None
    issuer: str = "observatory-api"
    audience: str = "observatory-api"
    access_ttl_seconds: int = 3600
    refresh_ttl_seconds: int = 7 * 24 * 3600
    leeway_seconds: int = 30
    api_key_cache_ttl_seconds: int = 60
    # `api_keys.last_used_at` is written at most once per key in this many seconds (only by an
    # app with a write engine, i.e. with ingest enabled).
    key_usage_interval_seconds: int = 300
    # Revoked token families live in the database; each worker re-reads the new ones this often...
    revocation_refresh_seconds: float = 1.0
    # ...and refuses access tokens (503) once its list has not been read for this long.
    revocation_max_staleness_seconds: float = 10.0


class RateLimitSettings(_Section):
    enabled: bool = True
    # The default limit and its window, for any caller a more specific rule does not cover.
    requests: int = 1000
    window: int = 60
    roles: dict[str, int] = msgspec.field(default_factory=lambda: {"admin": 10_000, "developer": 1000, "viewer": 100})
    endpoints: dict[str, int] = msgspec.field(default_factory=dict)
    anonymous_per_ip: int = 60
    auth_per_ip: int = 10
    fail_open: bool = True


class CorsSettings(_Section):
    origins: tuple[str, ...] = ("*",)
    allow_credentials: bool = False
    max_age: int = 600


class CacheSettings(_Section):
    enabled: bool = True
    default_ttl_seconds: int = 30
    endpoints: dict[str, int] = msgspec.field(default_factory=dict)


class LoggingSettings(_Section):
    level: LogLevel = "INFO"
    format: Literal["json", "console"] = "json"
    modules: dict[str, LogLevel] = msgspec.field(default_factory=dict)


class SecurityHeadersSettings(_Section):
    enabled: bool = True
    hsts_max_age: int = 31_536_000
    referrer_policy: str = "no-referrer"


class GraphQLSettings(_Section):
    enabled: bool = True
    playground: bool = False
    # Off by default: production refuses it (the schema is in the docs); turn it on in development.
    introspection: bool = False
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    max_cost: int = 1000


class QuerySettings(_Section):
    default_page_size: int = 50
    max_page_size: int = 1000
    default_range_hours: int = 24
    max_range_days: int = 31
    max_filter_nodes: int = 50


class FeatureSettings(_Section):
    ingest: bool = False
    docs: bool = True


class IngestSettings(_Section):
    # Concurrent OTLP batches written per worker; more wait briefly, then get 503 + Retry-After.
    max_concurrent_writes: int = 4


class ObservabilitySettings(_Section):
    sentry_dsn: str | None = None
    otlp_endpoint: str | None = None


class Settings(_Section):
    environment: Environment = "development"
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    cors: CorsSettings = msgspec.field(default_factory=CorsSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    security_headers: SecurityHeadersSettings = msgspec.field(default_factory=SecurityHeadersSettings)
    graphql: GraphQLSettings = msgspec.field(default_factory=GraphQLSettings)
    query: QuerySettings = msgspec.field(default_factory=QuerySettings)
    features: FeatureSettings = msgspec.field(default_factory=FeatureSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    observability: ObservabilitySettings = msgspec.field(default_factory=ObservabilitySettings)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def replace(self, **sections: Any) -> Settings:
        """A copy with whole sections or top-level values replaced (used by tests and the CLI)."""
        return msgspec.structs.replace(self, **sections)


# Environment variable -> dotted key. Names come from the service's documentation.
ENV_KEYS: dict[str, str] = {
    "ENVIRONMENT": "environment",
    "API_HOST": "server.host",
    "API_PORT": "server.port",
    "API_WORKERS": "server.workers",
    "API_METRICS_PORT": "server.metrics_port",
    "DATABASE_URL": "database.url",
    "DB_READONLY_USER": "database.readonly_user",
    "DB_READONLY_PASSWORD": "database.readonly_password",
    "REDIS_URL": "redis.url",
    "REDIS_PASSWORD": "redis.password",
    "JWT_SECRET": "auth.jwt_secret",
    "SECRET_KEY": "auth.secret_key",
    "CORS_ORIGINS": "cors.origins",
    "GRAPHQL_ENABLED": "graphql.enabled",
    "GRAPHQL_PLAYGROUND": "graphql.playground",
    "GRAPHQL_INTROSPECTION": "graphql.introspection",
    "RATE_LIMIT_ENABLED": "rate_limit.enabled",
    "RATE_LIMIT_REQUESTS": "rate_limit.requests",
    "RATE_LIMIT_WINDOW": "rate_limit.window",
    "SENTRY_DSN": "observability.sentry_dsn",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "observability.otlp_endpoint",
    "LOG_LEVEL": "logging.level",
    "LOG_FORMAT": "logging.format",
    "INGEST_ENABLED": "features.ingest",
}
# Secrets may also come from a file (Docker and Kubernetes secrets): NAME_FILE=/run/secrets/...
SECRET_ENV = ("DATABASE_URL", "DB_READONLY_PASSWORD", "REDIS_URL", "REDIS_PASSWORD", "JWT_SECRET", "SECRET_KEY")
SECRET_KEYS = frozenset(
    {
        "database.readonly_password",
        "redis.password",
        "auth.jwt_secret",
        "auth.secret_key",
        "observability.sentry_dsn",
    }
)
URL_KEYS = frozenset({"database.url", "redis.url"})
_LIST_KEYS = frozenset({"cors.origins", "server.trusted_proxies"})
_WEAK_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "dev", "development", "test"})
MIN_SECRET_LENGTH = 32
# Keys that no longer exist, with what to do instead: named at start-up rather than ignored.
REMOVED_KEYS = {
    "auth.revocation_fail_open": (
        "was removed: token revocations live in the database and their checks always fail closed "
        "(see auth.revocation_max_staleness_seconds); delete this key"
    ),
}


def default_config_path() -> Path | None:
    """`OBSERVATORY_CONFIG`, else ./api-config.yml, else the copy shipped in the package."""
    if explicit := os.environ.get("OBSERVATORY_CONFIG"):
        return Path(explicit)
    local = Path("api-config.yml")
    if local.is_file():
        return local
    shipped = Path(__file__).parent / "_defaults" / "api-config.yml"
    return shipped if shipped.is_file() else None


def load_settings(
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the YAML file, apply environment variables, then `overrides` (dotted keys), and validate."""
    environ = os.environ if environ is None else environ
    path = config_path if config_path is not None else default_config_path()
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(str(path), f"cannot read the configuration file ({exc.__class__.__name__})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(str(path), "the configuration file must hold a mapping of sections")
        data = loaded
    sources: dict[str, str] = {}
    for env_name, key in ENV_KEYS.items():
        value = _env_value(env_name, environ)
        if value is None:
            continue
        _set_dotted(data, key, _parse_env(key, value))
        sources[key] = env_name
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    _refuse_removed_keys(data)
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _config_error_from(exc, sources) from None
    validate_settings(settings)
    return settings


def _refuse_removed_keys(data: Mapping[str, Any]) -> None:
    for key, reason in REMOVED_KEYS.items():
        section, leaf = key.split(".")
        values = data.get(section)
        if isinstance(values, Mapping) and leaf in values:
            raise ConfigError(key, reason)


def _env_value(name: str, environ: Mapping[str, str]) -> str | None:
    if name in environ and environ[name] != "":
        return environ[name]
    file_var = f"{name}_FILE"
    if name in SECRET_ENV and environ.get(file_var):
        try:
            return Path(environ[file_var]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(file_var, f"cannot read the secret file ({exc.__class__.__name__})") from None
    return None


def _parse_env(key: str, value: str) -> Any:
    if key in _LIST_KEYS:
        return [item.strip() for item in value.split(",") if item.strip()]
    if key == "logging.level":
        return value.upper()
    return value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(part, "must be a mapping")
        node = child
    node[leaf] = value


_PATH_RE = re.compile(r"at `\$\.?(?P<path>[^`]*)`")


def _config_error_from(exc: msgspec.ValidationError, sources: Mapping[str, str]) -> ConfigError:
    message = str(exc)
    match = _PATH_RE.search(message)
    key = match.group("path") if match else "configuration"
    key = re.sub(r"\[\d+\]$", "", key)
    reason = _PATH_RE.sub("", message).strip(" -") or "invalid value"
    if key in sources:
        key = f"{key} ({sources[key]})"
    return ConfigError(key, reason)


def validate_settings(settings: Settings) -> None:
    """Checks that types alone cannot express; production is held to the checklist in the README."""
    for key, port in (("server.port", settings.server.port), ("server.metrics_port", settings.server.metrics_port)):
        if not 0 < port < 65536:
            raise ConfigError(key, f"must be a TCP port between 1 and 65535, got {port}")
    if settings.server.port == settings.server.metrics_port:
        raise ConfigError("server.metrics_port", "must differ from server.port: metrics have their own port")
    positives = {
        "server.workers": settings.server.workers,
        "server.max_body_bytes": settings.server.max_body_bytes,
        "database.pool_size": settings.database.pool_size,
        "rate_limit.requests": settings.rate_limit.requests,
        "rate_limit.window": settings.rate_limit.window,
        "query.default_page_size": settings.query.default_page_size,
        "query.max_page_size": settings.query.max_page_size,
        "query.max_range_days": settings.query.max_range_days,
        "query.default_range_hours": settings.query.default_range_hours,
        "graphql.max_depth": settings.graphql.max_depth,
        "auth.access_ttl_seconds": settings.auth.access_ttl_seconds,
        "auth.refresh_ttl_seconds": settings.auth.refresh_ttl_seconds,
        "auth.api_key_cache_ttl_seconds": settings.auth.api_key_cache_ttl_seconds,
        "auth.key_usage_interval_seconds": settings.auth.key_usage_interval_seconds,
        "rate_limit.anonymous_per_ip": settings.rate_limit.anonymous_per_ip,
        "rate_limit.auth_per_ip": settings.rate_limit.auth_per_ip,
        "cache.default_ttl_seconds": settings.cache.default_ttl_seconds,
        **{f"rate_limit.roles.{k}": v for k, v in settings.rate_limit.roles.items()},
        **{f"rate_limit.endpoints.{k}": v for k, v in settings.rate_limit.endpoints.items()},
        **{f"cache.endpoints.{k}": v for k, v in settings.cache.endpoints.items()},
    }
    for key, value in positives.items():
        if value <= 0:
            raise ConfigError(key, f"must be positive, got {value}")
    validate_revocation(settings.auth)
    if settings.query.max_page_size > 1000:
        raise ConfigError("query.max_page_size", "must be at most 1000")
    if settings.query.default_page_size > settings.query.max_page_size:
        raise ConfigError("query.default_page_size", "must not exceed query.max_page_size")
    url = settings.database.url
    if url is not None and not url.startswith(("postgresql", "postgres://", "sqlite")):
        raise ConfigError("database.url (DATABASE_URL)", "must be a postgresql:// or sqlite:// URL")
    if settings.redis.url is not None and not settings.redis.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis.url (REDIS_URL)", "must be a redis://, rediss:// or unix:// URL")
    if settings.is_production:
        validate_production(settings)


def validate_revocation(auth: AuthSettings) -> None:
    refresh, staleness = auth.revocation_refresh_seconds, auth.revocation_max_staleness_seconds
    if not 0.1 <= refresh <= 60:
        raise ConfigError("auth.revocation_refresh_seconds", f"must be between 0.1 and 60, got {refresh}")
    if staleness < 2 * refresh:
        raise ConfigError(
            "auth.revocation_max_staleness_seconds",
            f"must be at least twice auth.revocation_refresh_seconds ({2 * refresh}), got {staleness}",
        )


def validate_production(settings: Settings) -> None:
    """The production checklist: strong secrets, explicit CORS origins, no playground, real storage."""
    for key, secret in (
        ("auth.jwt_secret (JWT_SECRET)", settings.auth.jwt_secret),
        ("auth.secret_key (SECRET_KEY)", settings.auth.secret_key),
    ):
        uses_key_files = key.startswith("auth.jwt") and settings.auth.algorithm[:2] in ("RS", "ES")
        if uses_key_files:
            continue
        if not secret:
            raise ConfigError(key, "is required in production")
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _WEAK_SECRETS or len(set(secret)) < 8:
            raise ConfigError(key, f"is too weak for production (use at least {MIN_SECRET_LENGTH} random characters)")
    if any(origin == "*" or "*" in origin for origin in settings.cors.origins):
        raise ConfigError("cors.origins (CORS_ORIGINS)", "a wildcard origin is refused in production; list the origins")
    if settings.graphql.playground:
        raise ConfigError("graphql.playground (GRAPHQL_PLAYGROUND)", "must be false in production")
    if settings.graphql.enabled and settings.graphql.introspection:
        raise ConfigError("graphql.introspection (GRAPHQL_INTROSPECTION)", "must be false in production")
    if not settings.rate_limit.enabled:
        raise ConfigError("rate_limit.enabled (RATE_LIMIT_ENABLED)", "must be true in production")
    if settings.database.url is None:
        raise ConfigError("database.url (DATABASE_URL)", "production needs PostgreSQL, not the embedded SQLite file")


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret masked, for `config check`."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    for key in SECRET_KEYS:
        section, leaf = key.split(".")
        if data[section].get(leaf):
            data[section][leaf] = "***"
    for key in URL_KEYS:
        section, leaf = key.split(".")
        if data[section].get(leaf):
            data[section][leaf] = mask_url(data[section][leaf])
    return data


def mask_url(url: str) -> str:
    """Hide the password in `scheme://user:password@host/...`."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
