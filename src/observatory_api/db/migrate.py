"""Alembic, driven from code: upgrade to head, print the SQL, and tell whether a database is at head."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.settings import DatabaseSettings


def migrations_path() -> Path:
    """The `migrations/` folder: shipped inside the wheel, or at the root of a source checkout."""
    shipped = Path(__file__).resolve().parents[1] / "_migrations"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(database: DatabaseSettings, url: URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    # Read by migrations/env.py and the TimescaleDB policies of the first revision.
    config.attributes["database_settings"] = database
    return config


def head_revision(database: DatabaseSettings | None = None) -> str | None:
    script = ScriptDirectory.from_config(alembic_config(database or DatabaseSettings()))
    return script.get_current_head()


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


async def current_revision(connection: AsyncConnection) -> str | None:
    def read(sync_connection: Connection) -> Any:
        return MigrationContext.configure(sync_connection).get_current_revision()

    return await connection.run_sync(read)
