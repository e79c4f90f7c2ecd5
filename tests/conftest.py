"""Shared fixtures: real PostgreSQL, real SQLite, schemas built by running the migrations.

PostgreSQL and Redis must be running (`.ci/run` starts them); a missing service fails the tests,
it never skips them. Every database made here has a name starting with `observatory_test_` and
is dropped at the end.

With `OBSERVATORY_TEST_TIMESCALEDB_URL` set (`.ci/run`'s second pass), the PostgreSQL-backed tests
run on that TimescaleDB server instead, under the id `timescaledb`, and the SQLite ones are left
out (tests/timescaledb.py); the tests in tests/integration/timescaledb/ run only then.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from alembic import command
from litestar.testing import TestClient
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import alembic_config, upgrade
from observatory_api.demo.seed import seed_demo
from observatory_api.security.tokens import TokenService
from observatory_api.settings import AuthSettings, DatabaseSettings, IngestSettings, RateLimitSettings, Settings
from tests.dataset import DATASET_END, DATASET_SEED, DATASET_TRACES
from tests.private_redis import PrivateRedis
from tests.timescaledb import ON_TIMESCALEDB, TIMESCALEDB_URL, prepare_template, select_items

# The plain PostgreSQL server (tests/integration/timescaledb compares TimescaleDB's answers with it).
PLAIN_POSTGRES_URL = os.environ.get("OBSERVATORY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# The server of the PostgreSQL-backed tests.
ADMIN_URL = TIMESCALEDB_URL or PLAIN_POSTGRES_URL
READONLY_ROLE = "observatory_test_reader"
READONLY_PASSWORD = "reader-password-for-tests"
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
# Tests look the PostgreSQL backend up as "postgresql"; its id says which server it runs on.
BACKENDS = ["sqlite", pytest.param("postgresql", id="timescaledb")] if ON_TIMESCALEDB else ["sqlite", "postgresql"]
# Every app built by the tests signs tokens and hashes API keys with these.
TEST_AUTH = AuthSettings(
    jwt_secret="test-jwt-secret-0123456789abcdefghijklmnop", secret_key="test-secret-key-0123456789abcdefghijklmnop"
)
# Two distinct random values (secrets.token_urlsafe(32)) that pass the production secret rules.
STRONG_JWT_SECRET = "aab96vAo1rCDOh3nNwFhT6S60gygC8gSu5CwYVM0nZ4"
STRONG_SECRET_KEY = "8JBnJdZetzYBnP2PdQLdXrzs7k-rvtZ9Rv39vNL2Its"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    select_items(config, items)


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required at {ADMIN_URL} and is not reachable: {exc}", pytrace=False)


def _pg_url(name: str, *, user: str | None = None, password: str | None = None) -> str:
    url = make_url(ADMIN_URL).set(database=name)
    if user is not None:
        url = url.set(username=user, password=password)
    return url.render_as_string(hide_password=False)


async def _create_database(name: str, template: str | None = None) -> None:
    admin = await _admin()
    try:
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()


async def _drop_database(name: str) -> None:
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_database(template: str | None = None, *, label: str = "") -> AsyncIterator[str]:
    """The name of a new PostgreSQL database (a copy of `template`, or empty), dropped on exit."""
    name = f"observatory_test_{RUN_ID}_{label}{uuid.uuid4().hex[:8]}"
    await _create_database(name, template=template)
    try:
        yield name
    finally:
        await _drop_database(name)


@asynccontextmanager
async def table_locked(database: str, table: str, mode: str) -> AsyncIterator[asyncpg.Connection]:
    """`table` of the PostgreSQL `database` held in lock `mode` (e.g. "SHARE": writes wait) until
    exit; yields a second connection, outside that transaction, to watch the waiters with."""
    holder, watcher = await asyncpg.connect(_pg_url(database)), await asyncpg.connect(_pg_url(database))
    try:
        async with holder.transaction():
            await holder.execute(f"LOCK TABLE {table} IN {mode} MODE")
            yield watcher
    finally:
        await holder.close()
        await watcher.close()


async def run_migration(engine: AsyncEngine, database: DatabaseSettings, *steps: tuple[str, str]) -> None:
    """Run Alembic `steps` ("upgrade" or "downgrade", revision) in order, in one transaction."""
    config = alembic_config(database)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        for action, revision in steps:
            getattr(command, action)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


@pytest_asyncio.fixture(scope="session")
async def pg_template() -> AsyncIterator[str]:
    """An empty database at the latest revision, cloned by each test that writes."""
    name = f"observatory_test_{RUN_ID}_template"
    await _create_database(name)
    settings = DatabaseSettings(url=_pg_url(name))
    engine = create_engine(settings, database_url(settings))
    await upgrade(engine, settings)
    await engine.dispose()
    if ON_TIMESCALEDB:
        await prepare_template(ADMIN_URL, name)
    yield name
    await _drop_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "observatory.db"
    return path


@pytest_asyncio.fixture(scope="session")
async def _sqlite_template_ready(sqlite_template: Path) -> Path:
    settings = DatabaseSettings(sqlite_path=str(sqlite_template))
    engine = create_engine(settings, database_url(settings))
    await upgrade(engine, settings)
    await engine.dispose()
    return sqlite_template


@pytest_asyncio.fixture(params=BACKENDS)
async def migrated_database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_template: str, _sqlite_template_ready: Path
) -> AsyncIterator[DatabaseSettings]:
    """Settings of a fresh, empty, migrated database of each backend, private to one test."""
    if request.param == "sqlite":
        path = tmp_path / "observatory.db"
        shutil.copyfile(_sqlite_template_ready, path)
        yield DatabaseSettings(sqlite_path=str(path))
        return
    async with scratch_database(pg_template) as name:
        yield DatabaseSettings(url=_pg_url(name))


@pytest_asyncio.fixture
async def pg_empty_database() -> AsyncIterator[str]:
    """The URL of a new PostgreSQL database with nothing in it, dropped afterwards."""
    async with scratch_database() as name:
        yield _pg_url(name)


@pytest_asyncio.fixture
async def migrated_engine(migrated_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """An owner engine on a fresh, empty, migrated database (SQLite and PostgreSQL)."""
    engine = create_engine(migrated_database, database_url(migrated_database))
    yield engine
    await engine.dispose()


# --------------------------------------------------------------------------- the shared dataset


@pytest_asyncio.fixture(scope="session")
async def seeded_databases(
    pg_template: str, _sqlite_template_ready: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, DatabaseSettings]]:
    """The demo dataset of tests/dataset.py, written once per backend and only read afterwards.

    The PostgreSQL app reads it through a read-only role, as production does.
    """
    sqlite_path = tmp_path_factory.mktemp("seeded") / "observatory.db"
    shutil.copyfile(_sqlite_template_ready, sqlite_path)
    pg_name = f"observatory_test_{RUN_ID}_seeded"
    await _create_database(pg_name, template=pg_template)
    owners = [DatabaseSettings(sqlite_path=str(sqlite_path)), DatabaseSettings(url=_pg_url(pg_name))]
    for owner in owners:
        engine = create_engine(owner, database_url(owner))
        await seed_demo(engine, traces=DATASET_TRACES, seed=DATASET_SEED, end=DATASET_END, days=30)
        await engine.dispose()
    await _grant_readonly(pg_name)
    try:
        yield {
            "sqlite": owners[0],
            "postgresql": DatabaseSettings(
                url=_pg_url(pg_name), readonly_user=READONLY_ROLE, readonly_password=READONLY_PASSWORD
            ),
        }
    finally:
        await _drop_database(pg_name)


async def _grant_readonly(database: str) -> None:
    admin = await _admin()
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READONLY_ROLE)
        if not exists:
            await admin.execute(f"CREATE ROLE {READONLY_ROLE} LOGIN PASSWORD '{READONLY_PASSWORD}'")
    finally:
        await admin.close()
    owner = await asyncpg.connect(_pg_url(database))
    try:
        await owner.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {READONLY_ROLE}')
        await owner.execute(f"GRANT USAGE ON SCHEMA public TO {READONLY_ROLE}")
        await owner.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READONLY_ROLE}")
    finally:
        await owner.close()


def make_settings(database: DatabaseSettings, **sections: object) -> Settings:
    settings = Settings(environment="test", database=database, auth=TEST_AUTH).replace(**sections)
    if settings.ingest.grpc_port == IngestSettings().grpc_port:
        # No test listens on the well-known 4317 (other tests and services share this machine):
        # gRPC is off unless a test names a free port.
        settings = settings.replace(ingest=msgspec.structs.replace(settings.ingest, grpc_port=0))
    return settings


def auth_headers(settings: Settings, role: str = "developer", subject: str | None = None) -> dict[str, str]:
    """`Authorization: Bearer <access token>` for `role`, signed as `settings` verifies it."""
    issued = TokenService.from_settings(settings).issue(subject=subject or f"test-{role}", role=role, kind="access")
    return {"Authorization": f"Bearer {issued.token}"}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def client(backend: str, seeded_databases: dict[str, DatabaseSettings]) -> Iterator[TestClient]:
    """The real app, through `create_app`, over the seeded dataset of one backend, as a developer
    (rate limits high enough for the whole session; tests/integration/security tests the limits)."""
    roles = {"admin": 1_000_000, "developer": 1_000_000, "viewer": 1_000_000}
    settings = make_settings(seeded_databases[backend], rate_limit=RateLimitSettings(roles=roles))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers.update(auth_headers(settings, "developer"))
        yield test_client


@pytest.fixture(scope="session")
def full_range() -> dict[str, str]:
    """Query parameters covering the whole dataset (its 30 days fit in the 31-day limit)."""
    return {"from": (DATASET_END - timedelta(days=30, hours=12)).isoformat(), "to": DATASET_END.isoformat()}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test alone (tests/private_redis.py), killed after it."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()
