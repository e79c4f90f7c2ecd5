"""The checks on settings that types alone cannot express: ports, positive values, URLs, replicas.

Each returns every problem it finds as (key, reason), so that start-up and `config check` report
them all at once; where the service runs (secrets, CORS, production) is environment_checks.py.
"""

from __future__ import annotations

from observatory_api.settings.environment_checks import environment_problems
from observatory_api.settings.errors import ConfigError, config_error
from observatory_api.settings.redis_checks import sentinel_problems
from observatory_api.settings.sections import AuthSettings, DatabaseSettings, Settings


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
        "database.sqlite_memory_mib": settings.database.sqlite_memory_mib,
        "rate_limit.requests": settings.rate_limit.requests,
        "rate_limit.window": settings.rate_limit.window,
        "query.default_page_size": settings.query.default_page_size,
        "query.max_page_size": settings.query.max_page_size,
        "query.export_rows_per_read": settings.query.export_rows_per_read,
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
    if settings.query.export_rows_per_read > 50_000:
        problems.append(("query.export_rows_per_read", "must be at most 50000 (rows held in memory at once)"))
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
