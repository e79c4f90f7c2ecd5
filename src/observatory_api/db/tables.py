"""The schema, as SQLAlchemy Core tables.

The migrations in `migrations/` create exactly these tables and indexes (plus PostgreSQL-only
GIN indexes and TimescaleDB policies); repositories query them. Keep the two in step: a test
compares the migrated database with this metadata.
"""

from __future__ import annotations

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

from observatory_api.db.types import JSONDocument, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)

spans = Table(
    "spans",
    metadata,
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("service_name", String(200), nullable=False),
    Column("name", String(500), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("provider", String(100)),
    Column("model", String(200)),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("total_tokens", Integer),
    Column("cache_read_input_tokens", Integer),
    Column("cache_creation_input_tokens", Integer),
    Column("reasoning_output_tokens", Integer),
    Column("cost_usd", Double),
    Column("time_to_first_token_ms", Double),
    Column("status", String(8), nullable=False),
    Column("status_message", Text),
    Column("finish_reason", String(64)),
    Column("user_id", String(200)),
    Column("session_id", String(200)),
    Column("environment", String(100)),
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
    Index(None, "model_id", "start_time"),
    Index(None, "user_id", "start_time"),
    Index(None, "session_id", "start_time"),
    Index(None, "status", "start_time"),
    Index(None, "kind", "start_time"),
)

traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(32), nullable=False),
    Column("name", String(500), nullable=False),
    Column("service_name", String(200), nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("span_count", Integer, nullable=False),
    Column("llm_call_count", Integer, nullable=False),
    Column("error_count", Integer, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("total_tokens", Integer, nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("status", String(8), nullable=False),
    Column("user_id", String(200)),
    Column("session_id", String(200)),
    Column("environment", String(100)),
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
    Index(None, "user_id", "start_time"),
    Index(None, "session_id", "start_time"),
    Index(None, "status", "start_time"),
    Index(None, "model", "start_time"),
    Index(None, "service_name", "start_time"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(200), nullable=False),
    Column("user_id", String(200)),
    Column("environment", String(100)),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("trace_count", Integer, nullable=False),
    Column("error_count", Integer, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("total_tokens", Integer, nullable=False),
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
    Column("input_price_per_mtok", Double, nullable=False),
    Column("output_price_per_mtok", Double, nullable=False),
    Column("cache_read_price_per_mtok", Double),
    Column("cache_write_price_per_mtok", Double),
    Column("reasoning_price_per_mtok", Double),
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
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
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
