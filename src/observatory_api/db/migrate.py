"""Alembic, driven from code: upgrade to head, print the SQL. Imported by the CLI and by a worker
only when its embedded database is not at head (`db/revisions.py` tells, without Alembic)."""

from __future__ import annotations

import io

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.revisions import migrations_path
from observatory_api.settings import DatabaseSettings


def alembic_config(database: DatabaseSettings, url: URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    # Read by migrations/env.py and the TimescaleDB policies of the first revision.
    config.attributes["database_settings"] = database
    return config


async def upgrade(engine: AsyncEngine, database: DatabaseSettings) -> None:
    """Apply every migration not yet applied, in one transaction."""
    config = alembic_config(database)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


def upgrade_sql(database: DatabaseSettings, url: URL) -> str:
    """The SQL `upgrade` would run, for review or for a DBA to apply by hand."""
    config = alembic_config(database, url)
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()


_TIMESCALEDB_STATE = text(
    """
    SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
           (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
           current_setting('shared_preload_libraries') AS preloaded
    """
)
_HYPERTABLES = text(
    "SELECT count(*) FROM timescaledb_information.hypertables "
    "WHERE hypertable_schema = current_schema() AND hypertable_name IN ('spans', 'logs')"
)


async def timescaledb_report(engine: AsyncEngine) -> str:
    """One line: what the migrations made of TimescaleDB on this database, and why."""
    if engine.dialect.name != "postgresql":
        return "SQLite: no TimescaleDB"
    async with engine.connect() as connection:
        state = (await connection.execute(_TIMESCALEDB_STATE)).one()
        hypertables = int((await connection.execute(_HYPERTABLES)).scalar_one()) if state.installed else 0
    if state.installed and hypertables == 2:
        return f"TimescaleDB {state.installed}: spans and logs are hypertables, with compression and retention"
    if state.installed:
        return f"TimescaleDB {state.installed} installed after the first migration: spans and logs are plain tables"
    if state.available is None:
        return "plain PostgreSQL: TimescaleDB is not installed on this server"
    if "timescaledb" not in state.preloaded:
        return (
            f"plain PostgreSQL: TimescaleDB {state.available} is on this server but not in shared_preload_libraries, "
            "so it cannot be created; spans and logs are plain tables"
        )
    return f"plain PostgreSQL: TimescaleDB {state.available} could not be created here (see the migration's warning)"
