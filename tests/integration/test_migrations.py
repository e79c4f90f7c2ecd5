"""The migrations build exactly the schema db/tables.py describes, on both backends, and the
token revocation revision (0006) goes down and up again."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import metadata
from observatory_api.settings import DatabaseSettings
from tests.conftest import run_migration

# PostgreSQL only, created by 0001 outside the metadata (SQLite has no GIN).
POSTGRESQL_ONLY_INDEXES = {"ix_traces_models_gin", "ix_traces_tags_gin"}
REVOCATION_TABLES = {"revoked_token_families", "refresh_token_uses"}


async def _differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync)))


async def test_the_migrated_schema_is_the_one_db_tables_describes(migrated_engine: AsyncEngine) -> None:
    differences = await _differences(migrated_engine)
    unexplained = [d for d in differences if not (d[0] == "remove_index" and d[1].name in POSTGRESQL_ONLY_INDEXES)]
    assert not unexplained, unexplained


async def test_the_revocation_tables_go_down_and_up_again(
    migrated_engine: AsyncEngine, migrated_database: DatabaseSettings
) -> None:
    assert await _tables(migrated_engine) >= REVOCATION_TABLES
    await run_migration(migrated_engine, migrated_database, ("downgrade", "0005"))
    assert not REVOCATION_TABLES & await _tables(migrated_engine)
    await run_migration(migrated_engine, migrated_database, ("upgrade", "head"))
    assert await _tables(migrated_engine) >= REVOCATION_TABLES
    assert not [d for d in await _differences(migrated_engine) if d[0] != "remove_index"]
