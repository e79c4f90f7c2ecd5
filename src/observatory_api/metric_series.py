"""Every documented metric shows from the start: a zero series for each known label value.

Prometheus' instrumentation guide: a series that appears only with its first event leaves
dashboards with "No data" and alerts on `rate()` or `absent()` blind until then. This creates
the series (at 0) whose label values are a fixed set; labels that follow routes are left alone.
Called by `create_app`; each worker does it (in multiprocess mode zeros add up to zero).
"""

from __future__ import annotations

from itertools import product
from typing import Any, get_args

from observatory_api.ingest.limits import RejectReason
from observatory_api.ingest.report import DropReason, RefusalReason
from observatory_api.observability import metrics

SIGNALS = ("spans", "logs")
GRAPHQL_SERIES = (("query", "ok"), ("query", "error"), ("invalid", "error"))
RATE_LIMIT_SCOPES = ("role", "anonymous", "endpoint", "auth_ip")  # security.rate_limit.Bucket.scope
# security.authentication.AuthFailure and security.tokens.TokenError reasons (a test keeps this in step).
AUTH_FAILURE_REASONS = (
    "missing",
    "malformed",
    "ambiguous",
    "key_malformed",
    "key_unknown",
    "revoked",
    "refresh_reuse",
    "algorithm",
    "crit",
    "signature",
    "expired",
    "not_yet_valid",
    "claims",
    "token_type",
)
DB_POOL_STATES = ("checked_out", "idle", "overflow")


def _zero(counter: Any, *label_sets: tuple[str, ...]) -> None:
    for labels in product(*label_sets):
        counter.labels(*labels)


def create_known_series() -> None:
    """The zero series of every metric whose label values are a fixed set."""
    for operation, status in GRAPHQL_SERIES:
        metrics.api_graphql_queries_total.labels(operation, status)
    _zero(metrics.rate_limit_exceeded_total, RATE_LIMIT_SCOPES)
    _zero(metrics.rate_limit_requests_allowed, RATE_LIMIT_SCOPES)
    _zero(metrics.api_auth_failures_total, AUTH_FAILURE_REASONS)
    _zero(metrics.ingest_requests_refused_total, SIGNALS, get_args(RefusalReason))
    _zero(metrics.ingest_records_rejected_total, SIGNALS, get_args(RejectReason))
    _zero(metrics.ingest_attributes_dropped_total, SIGNALS, get_args(DropReason))
    _zero(metrics.ingest_nul_strings_stripped_total, SIGNALS)
    for state in DB_POOL_STATES:
        metrics.db_pool_connections.labels(state=state)
