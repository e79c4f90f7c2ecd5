"""TimescaleDB as tested on 2.28.3: every stored span counts in the continuous aggregates.

On TimescaleDB only (plain PostgreSQL and SQLite: nothing to do).

- The refresh policies of the four continuous aggregates (0005) reached back `retention_days - 1`
  days: a span written older than that (a backfill) was never materialised, and once the first
  refresh had moved the watermark, real-time aggregation no longer read it either: it dropped out
  of metric answers while still in `spans`. They now have no start offset: each run materialises
  every bucket whose spans changed since the last run, however old (a run costs what changed,
  not the window). A span written below the watermark (late, or a backfill) counts after the
  next run of its aggregate's policy (the schedule intervals of 0005: 1 minute for the minute
  aggregates, 10 minutes for the hour, 1 hour for the day); above it, at once (real-time
  aggregation).
- Each aggregate gets the retention of `spans`: buckets older than the spans kept are dropped
  with them, so an aggregate never answers for spans that are gone.
- `logs_time_idx`, the index TimescaleDB adds on a hypertable's time column, is dropped: the
  primary key (time, log_id) serves every query it could.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

AGGREGATES = ("metric_cagg_minute", "metric_cagg_minute_overall", "metric_cagg_hour", "metric_cagg_day")
# Per aggregate (end_offset, schedule_interval), as 0005 set them.
POLICIES = {
    "metric_cagg_minute": ("5 minutes", "1 minute"),
    "metric_cagg_minute_overall": ("5 minutes", "1 minute"),
    "metric_cagg_hour": ("5 minutes", "10 minutes"),
    "metric_cagg_day": ("1 hour", "1 hour"),
}


def _retention_days() -> int:
    context = op.get_context()
    settings = context.config.attributes.get("database_settings") if context.config else None
    return int(getattr(settings, "retention_days", 90))


def _policies(start_offset: str) -> str:
    statements = []
    for name in AGGREGATES:
        end_offset, schedule = POLICIES[name]
        statements.append(
            f"PERFORM remove_continuous_aggregate_policy('{name}', if_exists => true);\n"
            f"PERFORM add_continuous_aggregate_policy('{name}', start_offset => {start_offset}, "
            f"end_offset => INTERVAL '{end_offset}', schedule_interval => INTERVAL '{schedule}');"
        )
    return "\n".join(statements)


def _on_timescaledb(statements: str) -> None:
    from observatory_api.db.timescaledb_ddl import retried_while_jobs_race, when_timescaledb

    # Removing a policy deletes its job, which a run of it at that moment can race.
    aggregates_made = (
        "EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates"
        " WHERE view_schema = current_schema() AND view_name = 'metric_cagg_minute')"
    )
    op.execute(when_timescaledb(retried_while_jobs_race(statements), only_if=aggregates_made))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS logs_time_idx")
    retention = "\n".join(
        f"PERFORM add_retention_policy('{name}', INTERVAL '{_retention_days()} days', if_not_exists => true);"
        for name in AGGREGATES
    )
    _on_timescaledb(_policies("NULL") + "\n" + retention)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    retention = "\n".join(f"PERFORM remove_retention_policy('{name}', if_exists => true);" for name in AGGREGATES)
    _on_timescaledb(_policies(f"INTERVAL '{max(_retention_days() - 1, 1)} days'") + "\n" + retention)
