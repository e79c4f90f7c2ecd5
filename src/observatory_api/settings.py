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

from observatory_api.config_errors import ConfigError, config_error, conversion_problems
from observatory_api.redis_settings_checks import sentinel_problems
from observatory_api.settings_checks import environment_problems

Environment = Literal["development", "test", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    metrics_port: int = 9090
    # Addresses whose X-Forwarded-For is trusted; empty means use the socket address.
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    request_timeout_seconds: float = 30.0
    # A streamed answer (an export) that has started may run this long in all.
    stream_timeout_seconds: float = 3600.0


class DatabaseSettings(_Section, frozen=True):
    # None selects the embedded SQLite default at `sqlite_path`.
    url: str | None = None
    sqlite_path: str = "observatory.db"
    readonly_user: str | None = None
    readonly_password: str | None = None
    pool_size: int = 10
    max_overflow: int = 5
    pool_timeout_seconds: float = 5.0
    statement_timeout_ms: int = 15_000
    # Streaming replicas that serve the read path (docs/replicas.md); writes stay on `url`.
    replica_urls: tuple[str, ...] = ()
    # A replica further behind the primary than this is taken out of the read rotation.
    max_replica_lag_seconds: float = 10.0
    replica_check_interval_seconds: float = 2.0
    # TimescaleDB policies, applied by the migration only when the extension is present.
    compress_after_days: int = 7
    retention_days: int = 90


class RedisSentinelSettings(_Section, frozen=True):
    # host:port of each Sentinel; empty means no Sentinel (redis.url, or the in-process stores).
    hosts: tuple[str, ...] = ()
    master_name: str | None = None
    # The Sentinels' own password (their `requirepass`); redis.password is the primary's.
    password: str | None = None


class RedisSettings(_Section, frozen=True):
    # None (and no redis.sentinel.hosts) selects Litestar's in-process memory stores.
    url: str | None = None
    password: str | None = None
    socket_timeout_seconds: float = 0.25
    key_prefix: str = "observatory"
    sentinel: RedisSentinelSettings = msgspec.field(default_factory=RedisSentinelSettings)

    @property
    def configured(self) -> bool:
        """Redis is used: through `url`, or through the primary the Sentinels name."""
        return self.url is not None or bool(self.sentinel.hosts)


class AuthSettings(_Section, frozen=True):
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


class RateLimitSettings(_Section, frozen=True):
    enabled: bool = True
    # The default limit and its window, for any caller a more specific rule does not cover.
    requests: int = 1000
    window: int = 60
    roles: dict[str, int] = msgspec.field(default_factory=lambda: {"admin": 10_000, "developer": 1000, "viewer": 100})
    endpoints: dict[str, int] = msgspec.field(default_factory=dict)
    anonymous_per_ip: int = 60
    auth_per_ip: int = 10
    fail_open: bool = True


class CorsSettings(_Section, frozen=True):
    origins: tuple[str, ...] = ("*",)
    allow_credentials: bool = False
    max_age: int = 600


class CacheSettings(_Section, frozen=True):
    enabled: bool = True
    default_ttl_seconds: int = 30
    endpoints: dict[str, int] = msgspec.field(default_factory=dict)


class LoggingSettings(_Section, frozen=True):
    level: LogLevel = "INFO"
    format: Literal["json", "console"] = "json"
    modules: dict[str, LogLevel] = msgspec.field(default_factory=dict)


class SecurityHeadersSettings(_Section, frozen=True):
    enabled: bool = True
    hsts_max_age: int = 31_536_000
    referrer_policy: str = "no-referrer"


class GraphQLSettings(_Section, frozen=True):
    enabled: bool = True
    playground: bool = False
    # Off by default: production refuses it (the schema is in the docs); turn it on in development.
    introspection: bool = False
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    max_cost: int = 1000
    # Rows one request may read, and objects it may return (each tally on its own): see graphql/budget.py.
    max_rows: int = 10_000


class QuerySettings(_Section, frozen=True):
    default_page_size: int = 50
    max_page_size: int = 1000
    default_range_hours: int = 24
    max_range_days: int = 31
    max_filter_nodes: int = 50


class FeatureSettings(_Section, frozen=True):
    # OTLP ingest. None (the default) = on in development (the embedded default, `serve --demo`),
    # off in test, staging and production until set to true: `Settings.ingest_enabled` decides.
    ingest: bool | None = None
    docs: bool = True


class IngestSettings(_Section, frozen=True):
    # Concurrent OTLP batches written per worker; more wait briefly, then get 503 + Retry-After.
    max_concurrent_writes: int = 4
    # Bounds on the work of decoding one OTLP request (more is 413): the body after gzip (None:
    # server.max_body_bytes), its entries, and the attribute values of one span or log record.
    max_decompressed_bytes: int | None = None
    max_resources_per_request: int = 1_000
    max_scopes_per_request: int = 10_000
    max_records_per_request: int = 50_000
    max_values_per_record: int = 100_000
    # OTLP/gRPC (TraceService, LogsService, MetricsService) on this port, in every worker
    # (SO_REUSEPORT: the kernel spreads connections); 0 turns it off. Only with ingest enabled.
    grpc_port: int = 4317
    # Run one export through the whole ingest path, rolled back, before the worker is ready
    # (ingest/warmup.py); off only to measure what it saves (bench/first_export.py).
    warm_up: bool = True


class ObservabilitySettings(_Section, frozen=True):
    sentry_dsn: str | None = None
    otlp_endpoint: str | None = None


class Settings(_Section, frozen=True):
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

    @property
    def ingest_enabled(self) -> bool:
        """`features.ingest`, or when unset: on in development only."""
        if self.features.ingest is not None:
            return self.features.ingest
        return self.environment == "development"

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
    "API_TRUSTED_PROXIES": "server.trusted_proxies",
    "DATABASE_URL": "database.url",
    "DB_READONLY_USER": "database.readonly_user",
    "DB_READONLY_PASSWORD": "database.readonly_password",
    "DB_REPLICA_URLS": "database.replica_urls",
    "REDIS_URL": "redis.url",
    "REDIS_PASSWORD": "redis.password",
    "REDIS_SENTINELS": "redis.sentinel.hosts",
    "REDIS_SENTINEL_MASTER": "redis.sentinel.master_name",
    "REDIS_SENTINEL_PASSWORD": "redis.sentinel.password",
    "JWT_SECRET": "auth.jwt_secret",
    "SECRET_KEY": "auth.secret_key",
    "CORS_ORIGINS": "cors.origins",
    "GRAPHQL_ENABLED": "graphql.enabled",
    "GRAPHQL_PLAYGROUND": "graphql.playground",
    "GRAPHQL_INTROSPECTION": "graphql.introspection",
    "GRAPHQL_MAX_ROWS": "graphql.max_rows",
    "RATE_LIMIT_ENABLED": "rate_limit.enabled",
    "RATE_LIMIT_REQUESTS": "rate_limit.requests",
    "RATE_LIMIT_WINDOW": "rate_limit.window",
    "SENTRY_DSN": "observability.sentry_dsn",
    # Not OTEL_EXPORTER_OTLP_ENDPOINT: the ingest examples (README, docs/ingest.md) export that one in the shell
    # that may also start the server, which then traced itself into its own database.
    "TRACING_OTLP_ENDPOINT": "observability.otlp_endpoint",
    "LOG_LEVEL": "logging.level",
    "LOG_FORMAT": "logging.format",
    "INGEST_ENABLED": "features.ingest",
    "INGEST_MAX_DECOMPRESSED_BYTES": "ingest.max_decompressed_bytes",
    "INGEST_MAX_RESOURCES_PER_REQUEST": "ingest.max_resources_per_request",
    "INGEST_MAX_SCOPES_PER_REQUEST": "ingest.max_scopes_per_request",
    "INGEST_MAX_RECORDS_PER_REQUEST": "ingest.max_records_per_request",
    "INGEST_MAX_VALUES_PER_RECORD": "ingest.max_values_per_record",
    "INGEST_GRPC_PORT": "ingest.grpc_port",
    "INGEST_WARM_UP": "ingest.warm_up",
}
# Secrets may also come from a file (Docker and Kubernetes secrets): NAME_FILE=/run/secrets/...
SECRET_ENV = (
    "DATABASE_URL",
    "DB_READONLY_PASSWORD",
    "DB_REPLICA_URLS",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "REDIS_SENTINEL_PASSWORD",
    "JWT_SECRET",
    "SECRET_KEY",
)
SECRET_KEYS = frozenset(
    {
        "database.readonly_password",
        "redis.password",
        "redis.sentinel.password",
        "auth.jwt_secret",
        "auth.secret_key",
        "observability.sentry_dsn",
    }
)
URL_KEYS = frozenset({"database.url", "redis.url"})
URL_LIST_KEYS = frozenset({"database.replica_urls"})
_LIST_KEYS = frozenset({"cors.origins", "server.trusted_proxies", "database.replica_urls", "redis.sentinel.hosts"})
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
    *,
    production_checklist: bool = False,
) -> Settings:
    """Read the YAML file, apply environment variables, then `overrides` (dotted keys), and validate;
    with `production_checklist`, as production would (`config check --production`)."""
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
    problems: list[ConfigError] = []
    for env_name, key in ENV_KEYS.items():
        value = _env_value(env_name, environ)
        if value is None:
            continue
        parsed = _parse_env(key, value)
        if parsed == [] and key == "cors.origins":
            # Set but empty: skipping it would fall back to the file's origins (`*` by default).
            problems.append(ConfigError(f"{key} ({env_name})", "is empty; list the allowed origins, comma-separated"))
            continue
        _set_dotted(data, key, parsed)
        sources[key] = env_name
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    _refuse_removed_keys(data)
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise config_error([*problems, *conversion_problems(exc, data, Settings, sources)]) from None
    problems += settings_problems(settings, production_checklist=production_checklist)
    if problems:
        raise config_error(problems)
    return settings


def _refuse_removed_keys(data: Mapping[str, Any]) -> None:
    for key, reason in REMOVED_KEYS.items():
        section, leaf = key.split(".")
        values = data.get(section)
        if isinstance(values, Mapping) and leaf in values:
            raise ConfigError(key, reason)


def _env_value(name: str, environ: Mapping[str, str]) -> str | None:
    if name in environ and (environ[name] != "" or name == "CORS_ORIGINS"):
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


def validate_settings(settings: Settings, *, production_checklist: bool = False) -> None:
    """Raise every problem of `settings_problems` at once."""
    if problems := settings_problems(settings, production_checklist=production_checklist):
        raise config_error(problems)


def settings_problems(settings: Settings, *, production_checklist: bool = False) -> list[ConfigError]:
    """Checks that types alone cannot express; production (or `production_checklist`) is held to
    the checklist in docs/security.md, and secrets to secret_rules.py where they matter (settings_checks.py)."""
    found = _value_problems(settings) + environment_problems(settings, production_checklist=production_checklist)
    return [ConfigError(key, reason) for key, reason in found]


def _value_problems(settings: Settings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for key, port in (("server.port", settings.server.port), ("server.metrics_port", settings.server.metrics_port)):
        if not 0 < port < 65536:
            problems.append((key, f"must be a TCP port between 1 and 65535, got {port}"))
    if settings.server.port == settings.server.metrics_port:
        problems.append(("server.metrics_port", "must differ from server.port: metrics have their own port"))
    problems.extend(_grpc_port_problems(settings))
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
        "graphql.max_rows": settings.graphql.max_rows,
        "auth.access_ttl_seconds": settings.auth.access_ttl_seconds,
        "auth.refresh_ttl_seconds": settings.auth.refresh_ttl_seconds,
        "auth.api_key_cache_ttl_seconds": settings.auth.api_key_cache_ttl_seconds,
        "auth.key_usage_interval_seconds": settings.auth.key_usage_interval_seconds,
        "rate_limit.anonymous_per_ip": settings.rate_limit.anonymous_per_ip,
        "rate_limit.auth_per_ip": settings.rate_limit.auth_per_ip,
        "cache.default_ttl_seconds": settings.cache.default_ttl_seconds,
        "ingest.max_decompressed_bytes": (
            settings.server.max_body_bytes
            if settings.ingest.max_decompressed_bytes is None
            else settings.ingest.max_decompressed_bytes
        ),
        "ingest.max_resources_per_request": settings.ingest.max_resources_per_request,
        "ingest.max_scopes_per_request": settings.ingest.max_scopes_per_request,
        "ingest.max_records_per_request": settings.ingest.max_records_per_request,
        "ingest.max_values_per_record": settings.ingest.max_values_per_record,
        **{f"rate_limit.roles.{k}": v for k, v in settings.rate_limit.roles.items()},
        **{f"rate_limit.endpoints.{k}": v for k, v in settings.rate_limit.endpoints.items()},
        **{f"cache.endpoints.{k}": v for k, v in settings.cache.endpoints.items()},
    }
    for key, value in positives.items():
        if value <= 0:
            problems.append((key, f"must be positive, got {value}"))
    problems.extend(_revocation_problems(settings.auth))
    if settings.query.max_page_size > 1000:
        problems.append(("query.max_page_size", "must be at most 1000"))
    if settings.query.default_page_size > settings.query.max_page_size:
        problems.append(("query.default_page_size", "must not exceed query.max_page_size"))
    url = settings.database.url
    if url is not None and not url.startswith(("postgresql", "postgres://", "sqlite")):
        problems.append(("database.url (DATABASE_URL)", "must be a postgresql:// or sqlite:// URL"))
    problems.extend(_replica_problems(settings.database))
    if settings.redis.url is not None and not settings.redis.url.startswith(("redis://", "rediss://", "unix://")):
        problems.append(("redis.url (REDIS_URL)", "must be a redis://, rediss:// or unix:// URL"))
    problems.extend(sentinel_problems(settings.redis))
    return problems


def _replica_problems(database: DatabaseSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    key = "database.replica_urls (DB_REPLICA_URLS)"
    for index, url in enumerate(database.replica_urls):
        if not url.startswith(("postgresql", "postgres://")):
            # The URL may hold a password: name its position, never its text.
            problems.append((f"{key}[{index}]", "must be a postgresql:// URL"))
    if database.replica_urls and (database.url is None or not database.url.startswith("postgres")):
        problems.append((key, "replicas need a PostgreSQL primary in database.url (DATABASE_URL)"))
    for name in ("max_replica_lag_seconds", "replica_check_interval_seconds"):
        value = getattr(database, name)
        if not value > 0:
            problems.append((f"database.{name}", f"must be positive, got {value}"))
    return problems


def _grpc_port_problems(settings: Settings) -> list[tuple[str, str]]:
    port = settings.ingest.grpc_port
    if not 0 <= port < 65536:
        return [("ingest.grpc_port (INGEST_GRPC_PORT)", f"must be a TCP port, or 0 to turn gRPC off; got {port}")]
    if port and port in (settings.server.port, settings.server.metrics_port):
        return [("ingest.grpc_port (INGEST_GRPC_PORT)", "must differ from server.port and server.metrics_port")]
    return []


def _revocation_problems(auth: AuthSettings) -> list[tuple[str, str]]:
    refresh, staleness = auth.revocation_refresh_seconds, auth.revocation_max_staleness_seconds
    if not 0.1 <= refresh <= 60:
        return [("auth.revocation_refresh_seconds", f"must be between 0.1 and 60, got {refresh}")]
    if staleness < 2 * refresh:
        return [
            (
                "auth.revocation_max_staleness_seconds",
                f"must be at least twice auth.revocation_refresh_seconds ({2 * refresh}), got {staleness}",
            )
        ]
    return []


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret masked, for `config check`."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    for key in SECRET_KEYS:
        *parents, leaf = key.split(".")
        section = data
        for part in parents:
            section = section[part]
        if section.get(leaf):
            section[leaf] = "***"
    for key in URL_KEYS:
        name, leaf = key.split(".")
        if data[name].get(leaf):
            data[name][leaf] = mask_url(data[name][leaf])
    for key in URL_LIST_KEYS:
        name, leaf = key.split(".")
        data[name][leaf] = [mask_url(url) for url in data[name][leaf]]
    return data


def mask_url(url: str) -> str:
    """Hide the password in `scheme://user:password@host/...`."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
