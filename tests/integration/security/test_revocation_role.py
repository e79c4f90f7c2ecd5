"""The deployment of compose.yml: the API's DATABASE_URL is the read-only role of
deploy/sql/create_readonly_role.sql (the owner's password never reaches it). That role may write
the two revocation tables and nothing else, whichever of the role script and the migration ran
first. PostgreSQL only (SQLite has no roles)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.settings import DatabaseSettings, RedisSettings
from tests.conftest import ADMIN_URL, _pg_url, make_settings, scratch_database
from tests.integration.security.conftest import create_key, open_client
from tests.integration.security.test_authentication import assert_401
from tests.integration.security.test_revocation import bearer, login, refresh

ROLE_SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "sql" / "create_readonly_role.sql"
PASSWORD = "role-test-password-0123456789"


@pytest.fixture
def role() -> Iterator[str]:
    name = f"observatory_test_api_{uuid.uuid4().hex[:8]}"
    yield name

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            await admin.close()

    asyncio.run(drop())


def run_role_script(database: str, role: str) -> None:
    variables = ["-v", f"readonly_user={role}", "-v", f"readonly_password={PASSWORD}"]
    completed = subprocess.run(
        ["psql", "--no-psqlrc", "-q", "-d", _pg_url(database), *variables, "-f", str(ROLE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr


def migrate(database: str, readonly_user: str | None) -> None:
    settings = DatabaseSettings(url=_pg_url(database), readonly_user=readonly_user)

    async def run() -> None:
        engine = create_engine(settings, database_url(settings))
        try:
            await upgrade(engine, settings)
        finally:
            await engine.dispose()

    asyncio.run(run())


async def _insert_as(role_url: str, statement: str) -> str:
    connection = await asyncpg.connect(role_url)
    try:
        await connection.execute(statement)
        return "written"
    except asyncpg.PostgresError as exc:
        return exc.__class__.__name__
    finally:
        await connection.close()


@pytest.mark.parametrize("order", ["role_then_migration", "migration_then_role"])
def test_the_read_only_role_logs_out_and_rotates_but_writes_nothing_else(
    role: str, redis_settings: RedisSettings, order: str
) -> None:
    with _database() as name:
        if order == "role_then_migration":
            run_role_script(name, role)  # compose: the init script, then the `migrate` job
            migrate(name, readonly_user=role)
        else:
            migrate(name, readonly_user=None)  # a role created later, by running the script again
            run_role_script(name, role)
        role_url = _pg_url(name, user=role, password=PASSWORD)
        # As compose configures the API: DATABASE_URL carries the read-only role, as does DB_READONLY_USER.
        database = DatabaseSettings(url=role_url, readonly_user=role, readonly_password=PASSWORD)
        owner = make_settings(DatabaseSettings(url=_pg_url(name)))
        key = create_key(owner, role="viewer")
        settings = make_settings(database, redis=redis_settings)
        with open_client(settings) as client:
            pair = login(client, key)
            rotated = refresh(client, pair)
            assert rotated.status_code == 200, rotated.text
            assert client.post("/api/v1/auth/revoke", headers=bearer(rotated.json())).status_code == 204
            assert_401(client.get("/api/v1/models", headers=bearer(rotated.json())), "revoked")
        # Everything else stays read-only for that role.
        insert = "INSERT INTO models (id, provider, name, display_name) VALUES ('a/b', 'a', 'b', 'B')"
        assert asyncio.run(_insert_as(role_url, insert)) == "ReadOnlySQLTransactionError"
        assert asyncio.run(_insert_as(role_url, f"BEGIN READ WRITE; {insert}")) == "InsufficientPrivilegeError"


class _database:
    """A scratch PostgreSQL database for a synchronous test."""

    def __enter__(self) -> str:
        self._context = scratch_database(label="role")
        self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._context.__aenter__())

    def __exit__(self, *exc: object) -> None:
        self._loop.run_until_complete(self._context.__aexit__(None, None, None))
        self._loop.close()
