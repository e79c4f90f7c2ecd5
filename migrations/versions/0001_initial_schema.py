"""Initial schema: spans, traces, sessions, logs, models, api_keys.

On PostgreSQL with TimescaleDB available, spans and logs become hypertables with compression and
retention policies; on plain PostgreSQL and SQLite the same revision runs without them. The choice
is made by what the database reports, inside the database, so `migrate --sql` output carries it too.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_span_id", sa.String(16)),
        sa.Column("service_name", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=False),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.Column("provider", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("total_tokens", sa.Integer),
        sa.Column("cache_read_input_tokens", sa.Integer),
        sa.Column("cache_creation_input_tokens", sa.Integer),
        sa.Column("reasoning_output_tokens", sa.Integer),
        sa.Column("cost_usd", sa.Double),
        sa.Column("time_to_first_token_ms", sa.Double),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("finish_reason", sa.String(64)),
        sa.Column("user_id", sa.String(200)),
        sa.Column("session_id", sa.String(200)),
        sa.Column("environment", sa.String(100)),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("attributes", JSON, nullable=False),
        sa.PrimaryKeyConstraint("trace_id", "span_id", "start_time", name="pk_spans"),
    )
    for columns in (
        ["start_time"],
        ["model", "start_time"],
        ["user_id", "start_time"],
        ["session_id", "start_time"],
        ["status", "start_time"],
        ["kind", "start_time"],
    ):
        op.create_index(f"ix_spans_{'_'.join(columns)}", "spans", columns)

    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("service_name", sa.String(200), nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=False),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.Column("span_count", sa.Integer, nullable=False),
        sa.Column("llm_call_count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("total_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("session_id", sa.String(200)),
        sa.Column("environment", sa.String(100)),
        sa.Column("provider", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("models", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.PrimaryKeyConstraint("trace_id", name="pk_traces"),
    )
    for columns in (
        ["start_time", "trace_id"],
        ["user_id", "start_time"],
        ["session_id", "start_time"],
        ["status", "start_time"],
        ["model", "start_time"],
        ["service_name", "start_time"],
    ):
        op.create_index(f"ix_traces_{'_'.join(columns)}", "traces", columns)

    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("environment", sa.String(100)),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("trace_count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("total_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_last_seen_session_id", "sessions", ["last_seen", "session_id"])
    op.create_index("ix_sessions_user_id_last_seen", "sessions", ["user_id", "last_seen"])

    op.create_table(
        "logs",
        sa.Column("time", TS, nullable=False),
        sa.Column("log_id", sa.String(32), nullable=False),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("span_id", sa.String(16)),
        sa.Column("service_name", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.PrimaryKeyConstraint("time", "log_id", name="pk_logs"),
    )
    op.create_index("ix_logs_trace_id", "logs", ["trace_id"])
    op.create_index("ix_logs_severity_time", "logs", ["severity", "time"])

    op.create_table(
        "models",
        sa.Column("id", sa.String(300), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("context_window", sa.Integer),
        sa.Column("input_price_per_mtok", sa.Double, nullable=False),
        sa.Column("output_price_per_mtok", sa.Double, nullable=False),
        sa.Column("cache_read_price_per_mtok", sa.Double),
        sa.Column("cache_write_price_per_mtok", sa.Double),
        sa.Column("reasoning_price_per_mtok", sa.Double),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
    )
    op.create_index("ix_models_provider_name", "models", ["provider", "name"], unique=True)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("last_used_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"], unique=True)

    if op.get_context().dialect.name == "postgresql":
        _postgresql_extras()


def _postgresql_extras() -> None:
    # GIN indexes answer "traces that used model X / carry tag Y" without scanning.
    op.execute("CREATE INDEX ix_traces_models_gin ON traces USING gin (models jsonb_path_ops)")
    op.execute("CREATE INDEX ix_traces_tags_gin ON traces USING gin (tags jsonb_path_ops)")
    settings = op.get_context().config.attributes.get("database_settings") if op.get_context().config else None
    compress_days = int(getattr(settings, "compress_after_days", 7))
    retention_days = int(getattr(settings, "retention_days", 90))
    # Decided inside the database, by what it can do: the same SQL works with and without
    # TimescaleDB. Having its files is not enough (`pg_available_extensions`): it must be in
    # `shared_preload_libraries`, or CREATE EXTENSION fails, and the failed load leaves the
    # session failing every later statement: that case is recognised before trying. Any other
    # failure to create it (no right to) is reported as a WARNING and the tables stay plain.
    op.execute(
        f"""
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
             AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
            IF current_setting('shared_preload_libraries') ~ '(^|[,/"[:space:]])timescaledb([",[:space:]]|$)' THEN
              BEGIN
                CREATE EXTENSION timescaledb;
              EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'TimescaleDB not used: %', SQLERRM;
              END;
            ELSE
              RAISE WARNING 'TimescaleDB not used: it is not in shared_preload_libraries';
            END IF;
          END IF;
          IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
            PERFORM create_hypertable('spans', 'start_time', chunk_time_interval => INTERVAL '1 day',
                                      migrate_data => true, if_not_exists => true);
            PERFORM create_hypertable('logs', 'time', chunk_time_interval => INTERVAL '1 day',
                                      migrate_data => true, if_not_exists => true);
            ALTER TABLE spans SET (timescaledb.compress, timescaledb.compress_segmentby = 'model',
                                   timescaledb.compress_orderby = 'start_time DESC');
            ALTER TABLE logs SET (timescaledb.compress, timescaledb.compress_segmentby = 'service_name',
                                  timescaledb.compress_orderby = 'time DESC');
            PERFORM add_compression_policy('spans', INTERVAL '{compress_days} days', if_not_exists => true);
            PERFORM add_compression_policy('logs', INTERVAL '{compress_days} days', if_not_exists => true);
            PERFORM add_retention_policy('spans', INTERVAL '{retention_days} days', if_not_exists => true);
            PERFORM add_retention_policy('logs', INTERVAL '{retention_days} days', if_not_exists => true);
          END IF;
        END
        $$;
        """
    )


def downgrade() -> None:
    for table in ("api_keys", "models", "logs", "sessions", "traces", "spans"):
        op.drop_table(table)
