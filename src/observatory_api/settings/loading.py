"""Reading the settings: `api-config.yml` first, then environment variables, then overrides.

Nothing here runs at import time; `load_settings()` is called by the CLI and by tests,
and `create_app(settings)` receives the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from observatory_api.settings.checks import settings_problems
from observatory_api.settings.errors import ConfigError, config_error, conversion_problems
from observatory_api.settings.sections import Settings

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
    "DB_SQLITE_MEMORY_MIB": "database.sqlite_memory_mib",
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
    "QUERY_PRELOAD_PARQUET": "query.preload_parquet",
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
    shipped = Path(__file__).parent.parent / "_defaults" / "api-config.yml"
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
