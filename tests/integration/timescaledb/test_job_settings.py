"""The continuous aggregates' refresh jobs run with JIT off (migration 0011): their owner's setting
in the migrated database; other roles keep the server's, and a downgrade restores it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from sqlalchemy.engine import make_url

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.settings import DatabaseSettings
from tests.conftest import ADMIN_URL, RUN_ID, run_migration


@pytest_asyncio.fixture
async def migrated() -> AsyncIterator[DatabaseSettings]:
    """A database migrated in place (a clone of the test template would not carry role settings:
    they belong to the database they were set in)."""
    name = f"observatory_test_{RUN_ID}_jit{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = DatabaseSettings(url=make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False))
        engine = create_engine(settings, database_url(settings))
        try:
            await upgrade(engine, settings)
        finally:
            await engine.dispose()
        yield settings
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _jit(url: str, role: str | None = None) -> str:
    conn = await asyncpg.connect(url, user=role) if role else await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW jit"))
    finally:
        await conn.close()


async def test_the_refresh_jobs_owner_runs_without_jit_and_other_roles_keep_it(migrated: DatabaseSettings) -> None:
    url = migrated.url or ""
    admin = await asyncpg.connect(url)
    role = f"obs_reader_{uuid.uuid4().hex[:8]}"
    try:
        owners = {
            r["owner"]
            for r in await admin.fetch(
                "SELECT owner FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'"
            )
        }
        assert owners == {await admin.fetchval("SELECT current_user")}
        server_default = str(await admin.fetchval("SELECT boot_val FROM pg_settings WHERE name = 'jit'"))
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        # A new session of the jobs' owner in this database: what a job's background worker gets.
        assert await _jit(url) == "off"
        assert await _jit(url, role) == server_default == "on"

        engine = create_engine(migrated, database_url(migrated))
        try:
            await run_migration(engine, migrated, ("downgrade", "0010"))
        finally:
            await engine.dispose()
        assert await _jit(url) == server_default
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
