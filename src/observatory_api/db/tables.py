"""The schema, as SQLAlchemy Core tables.

The migrations in `migrations/` create exactly these tables and indexes (plus PostgreSQL-only
GIN indexes and TimescaleDB policies); repositories query them. Keep the two in step: a test
compares the migrated database with this metadata.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

from observatory_api.core.records import TOKEN_COUNTS
from observatory_api.db.types import JSONDocument, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)


def _columns(type_: Any, *names: str, **options: Any) -> list[Column[Any]]:
    """Columns of one type and the same options, in this order."""
    return [Column(name, type_, **options) for name in names]


def _timing() -> list[Column[Any]]:
    """When a span or a trace started and ended, and how long it took."""
    return [
        *_columns(UTCDateTime, "start_time", "end_time", nullable=False),
        Column("duration_ms", Double, nullable=False),
    ]


def _context() -> list[Column[Any]]:
    """Who and where, as the instrumentation names them: spans and trace summaries alike."""
    return [*_columns(String(200), "user_id", "session_id"), Column("environment", String(100))]


def _by_time(time: str, *columns: str) -> list[Index]:
    """An index on each of `columns` then `time`: the lists filter by one and walk the other."""
    return [Index(None, column, time) for column in columns]


spans = Table(
    "spans",
    metadata,
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("service_name", String(200), nullable=False),
    Column("name", String(500), nullable=False),
    Column("kind", String(16), nullable=False),
    *_timing(),
    Column("provider", String(100)),
    Column("model", String(200)),
    *_columns(Integer, *TOKEN_COUNTS),
    *_columns(Double, "cost_usd", "time_to_first_token_ms"),
    Column("status", String(8), nullable=False),
    Column("status_message", Text),
    Column("finish_reason", String(64)),
    *_context(),
    Column("tags", JSONDocument, nullable=False),
    Column("input", Text),
    Column("output", Text),
    Column("attributes", JSONDocument, nullable=False),
    # The canonical model (`core.canonical_models`; `model` is the name as sent) and where `cost_usd`
    # came from (`storage.costs`); migration 0008 added them.
    Column("model_id", String(300)),
    Column("cost_source", String(16)),
    # A TimescaleDB hypertable needs the time column in every unique index.
    PrimaryKeyConstraint("trace_id", "span_id", "start_time"),
    Index(None, "start_time"),
    *_by_time("start_time", "model_id", "user_id", "session_id", "status", "kind"),
)

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(32), nullable=False),
    Column("name", String(500), nullable=False),
    Column("service_name", String(200), nullable=False),
    *_timing(),
    *_columns(
        Integer,
        "span_count",
        "llm_call_count",
        "error_count",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        nullable=False,
    ),
    Column("cost_usd", Double, nullable=False),
    Column("status", String(8), nullable=False),
    *_context(),
    Column("provider", String(100)),
    Column("model", String(200)),
    Column("models", JSONDocument, nullable=False),
    Column("tags", JSONDocument, nullable=False),
    # Which context columns some span names, and which some span with a parent misses
    # (storage.context.context_bits); 255, "all of them", until the trace is next refreshed.
    Column("context_bits", SmallInteger, nullable=False, server_default=text("255")),
    # Model calls without a cost (unknown price or usage): `cost_usd` leaves them out (0008).
    Column("unpriced_calls", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("trace_id"),
    Index(None, "start_time", "trace_id"),
    *_by_time("start_time", "user_id", "session_id", "status", "model", "service_name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(200), nullable=False),
    Column("user_id", String(200)),
    Column("environment", String(100)),
    *_columns(UTCDateTime, "first_seen", "last_seen", nullable=False),
    *_columns(Integer, "trace_count", "error_count", "input_tokens", "output_tokens", "total_tokens", nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("unpriced_calls", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("session_id"),
    Index(None, "last_seen", "session_id"),
    Index(None, "user_id", "last_seen"),
)

logs = Table(
    "logs",
    metadata,
    Column("time", UTCDateTime, nullable=False),
    Column("log_id", String(32), nullable=False),
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("service_name", String(200), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("body", Text, nullable=False),
    Column("attributes", JSONDocument, nullable=False),
    PrimaryKeyConstraint("time", "log_id"),
    Index(None, "trace_id"),
    Index(None, "severity", "time"),
)

models = Table(
    "models",
    metadata,
    Column("id", String(300), nullable=False),
    Column("provider", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("context_window", Integer),
    PrimaryKeyConstraint("id"),
    Index(None, "provider", "name", unique=True),
)

# Each model's list prices over time: a price holds from `effective_from` until the next one.
model_prices = Table(
    "model_prices",
    metadata,
    Column("model_id", String(300), ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("effective_from", UTCDateTime, nullable=False),
    *_columns(Double, "input_price_per_mtok", "output_price_per_mtok", nullable=False),
    *_columns(Double, "cache_read_price_per_mtok", "cache_write_price_per_mtok", "reasoning_price_per_mtok"),
    PrimaryKeyConstraint("model_id", "effective_from"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    *_columns(UTCDateTime, "expires_at", "revoked_at", "last_used_at"),
    PrimaryKeyConstraint("id"),
    Index(None, "prefix", unique=True),
)

# Revocation state (security/revocation.py): kept here, not in Redis, so that no eviction, flush or
# restart brings a logged-out or spent token back. `revoked_at` is the database's clock, so that
# every worker and instance reads the rows written since its last read by one clock.
revoked_token_families = Table(
    "revoked_token_families",
    metadata,
    Column("family_id", String(64), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=False),
    # After this no token of the family can verify any longer: the row may be pruned.
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("family_id"),
    Index(None, "revoked_at"),
    Index(None, "expires_at"),
)

# One row per refresh token presented: the INSERT on `jti` claims its one use atomically.
refresh_token_uses = Table(
    "refresh_token_uses",
    metadata,
    Column("jti", String(64), nullable=False),
    Column("family_id", String(64), nullable=False),
    Column("used_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("jti"),
    Index(None, "expires_at"),
)
