"""The service's Prometheus metrics: names as the service's documentation lists them.

Labels are bounded: route templates (never raw paths), methods, status classes, roles, reasons,
operations. With several granian workers, `PROMETHEUS_MULTIPROC_DIR` must be set before this module
is imported (the `serve` command does it) so that one scrape sees every worker; the launcher then
serves them all on `server.metrics_port` (observability/metrics_server.py). Without it (tests, a
single process) the values live in prometheus_client's default registry.

Exposed names: a Counter `x` is exposed as `x_total` (`rate_limit_requests_allowed` included:
`rate_limit_requests_allowed_total`); a Histogram `x` as `x_bucket`, `x_sum`, `x_count`.
Gauges are aggregated over the live workers (`livesum`), so a dead worker's value disappears.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from observatory_api import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

http_requests_total = Counter(
    "http_requests_total",
    "HTTP requests answered, by the status the client received.",
    ["method", "route", "status_class", "role"],
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
http_requests_in_flight = Gauge(
    "http_requests_in_flight",
    "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)
api_rest_requests_total = Counter(
    "api_rest_requests_total",
    "REST API requests under /api/v1.",
    ["method", "route", "status_class"],
)
api_graphql_queries_total = Counter(
    "api_graphql_queries_total",
    "GraphQL operations executed.",
    ["operation", "status"],
)
api_auth_failures_total = Counter(
    "api_auth_failures_total",
    "Refused credentials, by reason.",
    ["reason"],
)
rate_limit_exceeded_total = Counter(
    "rate_limit_exceeded_total",
    "Requests refused with 429, by the limit that refused them.",
    ["scope"],
)
rate_limit_requests_allowed = Counter(
    "rate_limit_requests_allowed",
    "Requests a rate limit let through, by the limit that counted them.",
    ["scope"],
)
rate_limit_backend_errors_total = Counter(
    "rate_limit_backend_errors_total",
    "Rate-limit checks that could not reach their store (then fail open or closed as configured).",
)
auth_revocation_refresh_failures_total = Counter(
    "auth_revocation_refresh_failures_total",
    "Reads of the token revocation list that failed (access tokens get 503 once the list is too old).",
)
cache_hits_total = Counter("cache_hits_total", "Responses served from the response cache.", ["route"])
cache_misses_total = Counter("cache_misses_total", "Cacheable responses computed afresh.", ["route"])
cache_size_bytes = Gauge(
    "cache_size_bytes",
    "Bytes of responses written to the cache by this process and not yet expired (an estimate).",
    multiprocess_mode="livesum",
)
db_pool_connections = Gauge(
    "db_pool_connections",
    "Database pool connections by state: checked_out, idle, and overflow (opened beyond pool_size, >= 0).",
    ["state"],
    multiprocess_mode="livesum",
)
# Read replicas (docs/replicas.md), labelled `host:port` (a fixed set, from the configuration).
# Each worker checks for itself: a replica is up only if every live worker has it in rotation,
# and its lag is the largest any worker measured.
db_replica_up = Gauge(
    "db_replica_up",
    "1 while the replica serves reads (reachable, a standby, within database.max_replica_lag_seconds), else 0.",
    ["replica"],
    multiprocess_mode="livemin",
)
metric_segment_cache_serving = Gauge(
    "metric_segment_cache_serving",
    "1 while the metric segment cache serves queries; 0 while it is suspended (its Redis subscription "
    "lost) or the worker keeps none. The lowest over the workers.",
    multiprocess_mode="livemin",
)
db_replica_lag_seconds = Gauge(
    "db_replica_lag_seconds",
    "How far the replica is behind the primary at the last check that could measure it (an upper bound).",
    ["replica"],
    multiprocess_mode="livemax",
)
db_replica_read_retries_total = Counter(
    "db_replica_read_retries_total",
    "Requests whose reads a replica failed (connection lost or refused) and that were answered again from the primary.",
)
db_query_duration_seconds = Histogram(
    "db_query_duration_seconds",
    "Time spent in repository operations, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
# OTLP ingest: what was refused, rejected, dropped or changed. `signal` is `spans` or `logs`; the
# reasons are fixed sets (ingest/report.py), never attribute keys or ids.
ingest_requests_refused_total = Counter(
    "ingest_requests_refused_total",
    "OTLP requests refused whole (4xx) or whose decoding was stopped by a timeout, by reason.",
    ["signal", "reason"],
)
ingest_records_rejected_total = Counter(
    "ingest_records_rejected_total",
    "Spans or log records not stored (counted in partial_success), by reason.",
    ["signal", "reason"],
)
ingest_attributes_dropped_total = Counter(
    "ingest_attributes_dropped_total",
    "Attributes left out of records that were stored, by reason.",
    ["signal", "reason"],
)
ingest_nul_strings_stripped_total = Counter(
    "ingest_nul_strings_stripped_total",
    "Strings stored with their NUL characters removed (PostgreSQL text cannot hold U+0000).",
    ["signal"],
)
ingest_metric_points_discarded_total = Counter(
    "ingest_metric_points_discarded_total",
    "OTLP metric data points accepted on /v1/metrics and not stored (LLM metrics come from spans).",
)
ingest_grpc_requests_total = Counter(
    "ingest_grpc_requests_total",
    "OTLP/gRPC Export calls, by signal and gRPC status code (OTLP/HTTP is in the HTTP metrics).",
    ["signal", "code"],
)
# An Info metric is not supported in multiprocess mode: a constant gauge gives the same series,
# `observatory_api_build_info{version="..."} 1`.
build_info = Gauge(
    "observatory_api_build_info",
    "Version of the running service (always 1).",
    ["version"],
    multiprocess_mode="max",
)


def record_build_info() -> None:
    """Called by `create_app`: nothing is written at import time."""
    build_info.labels(version=__version__).set(1)
