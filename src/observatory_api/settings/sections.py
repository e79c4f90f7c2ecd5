"""The frozen sections of the configuration, and `Settings` that holds them all.

Types alone decide here; the checks that types cannot express are in checks.py and
environment_checks.py, and reading the file and the environment is in loading.py.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

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
    # SQLite's memory per worker process (MiB), every connection together: its soft heap limit;
    # SQLite drops cached pages to stay under it. One connection alone may use all of it.
    sqlite_memory_mib: int = 64
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
    # A verified access token's claims are reused for this long (never past `exp`) instead of
    # checking its signature again; revocation is still checked on every request. 0 turns it off.
    verified_token_cache_seconds: float = 60.0
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
    # Hits answered before the router and its middleware (security/cache_fast_path.py); off = the full stack.
    fast_path: bool = True


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
    # Rows an NDJSON or CSV export reads at a time: fewer round trips than a list page; 5,000 made
    # the server's first export grow by ~58 MB, 2,000 by ~24 (bench/RESULTS.md). OTLP/JSON and
    # Parquet keep max_page_size: their requests and row groups are pages.
    export_rows_per_read: int = 2000
    # When pyarrow is installed: import it and write one Parquet row in memory as a worker starts,
    # so what pyarrow sets up once (~55 MB: modules, codec, threads) is start-up memory rather
    # than the first Parquet export's growth, which stays under issue 19's 50 MB (bench/RESULTS.md).
    # False: at the first Parquet export, so a worker that never exports Parquet never holds it.
    preload_parquet: bool = True


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
