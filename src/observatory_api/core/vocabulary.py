"""The service's words, each written once: span kinds and statuses, log severities, roles, route
prefixes and probe paths.

The Literal types serve the OpenAPI document and the records (Litestar renders a Literal as an
inline `enum`); the tuples are derived from them for GraphQL enums, filters and validation.
"""

from __future__ import annotations

from typing import Literal, get_args

SpanKind = Literal["llm", "embedding", "chain", "agent", "tool", "retriever", "other"]
SpanStatus = Literal["ok", "error", "unset"]
LogSeverity = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
Role = Literal["admin", "developer", "viewer", "ingest"]

SPAN_KINDS: tuple[SpanKind, ...] = get_args(SpanKind)
SPAN_STATUSES: tuple[SpanStatus, ...] = get_args(SpanStatus)
LOG_SEVERITIES: tuple[LogSeverity, ...] = get_args(LogSeverity)
ROLES: tuple[Role, ...] = get_args(Role)

# Route prefixes.
API_PREFIX = "/api/v1"
AUTH_PREFIX = f"{API_PREFIX}/auth"
GRAPHQL_PATH = "/graphql"
GRAPHIQL_PATH = f"{GRAPHQL_PATH}/playground"
SCHEMA_PATH = "/schema"
OTLP_TRACES_PATH = "/v1/traces"
OTLP_LOGS_PATH = "/v1/logs"
OTLP_METRICS_PATH = "/v1/metrics"

# Probe paths: plain routes outside the API prefix, left out of auth, rate limits and metrics.
ALIVE_PATH = "/alive"
READY_PATH = "/ready"
HEALTH_PATH = "/health"
PROBE_PATHS: tuple[str, ...] = (ALIVE_PATH, READY_PATH, HEALTH_PATH)
