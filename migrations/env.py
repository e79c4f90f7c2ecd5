"""Alembic environment: runs on a connection handed over by `observatory_api.db.migrate`, or offline
(`observatory-api migrate --sql`) on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from observatory_api.db.tables import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `observatory-api migrate`, which provides the connection")
    if connection.dialect.name == "postgresql":
        # Index builds on large tables outlast the API's statement timeout.
        connection.execute(text("SET LOCAL statement_timeout = 0"))
    context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
