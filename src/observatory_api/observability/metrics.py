"""The service's Prometheus metrics: names as the service's documentation lists them.

Labels are bounded: route templates (never raw paths), methods, status classes, roles, reasons,
operations. With several granian workers, `PROMETHEUS_MULTIPROC_DIR` must be set before this module
is imported (the `serve` command does it) so that one scrape sees every worker.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

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
cache_hits_total = Counter("cache_hits_total", "Responses served from the response cache.", ["route"])
cache_misses_total = Counter("cache_misses_total", "Cacheable responses computed afresh.", ["route"])
cache_size_bytes = Gauge(
    "cache_size_bytes",
    "Bytes of responses written to the cache by this process and not yet expired (an estimate).",
    multiprocess_mode="livesum",
)
db_pool_connections = Gauge(
    "db_pool_connections",
    "Database pool connections by state (checked_out, idle, overflow).",
    ["state"],
    multiprocess_mode="livesum",
)
db_query_duration_seconds = Histogram(
    "db_query_duration_seconds",
    "Time spent in repository operations, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
build_info = Info("observatory_api_build", "Version of the running service.")
build_info.info({"version": __version__})
