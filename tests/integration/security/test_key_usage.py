"""`api_keys.last_used_at`: written through the owner engine at most once per key and interval,
shared across app instances through Redis, never for a refused key, never failing a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from observatory_api.app import create_app
from observatory_api.db import tables
from observatory_api.db.engine import create_engine, database_url, is_sqlite
from observatory_api.security.api_keys import ApiKeyAdmin, secret_key_of
from observatory_api.security.key_usage import KeyUsageRecorder
from observatory_api.settings import DatabaseSettings, FeatureSettings, RedisSettings, Settings
from tests.conftest import TEST_AUTH, auth_headers, make_settings

MODELS = "/api/v1/models"


def settings_for(
    database: DatabaseSettings, redis: RedisSettings, *, ingest: bool = True, interval: int = 300
) -> Settings:
    # Ingest gives the app its owner (write) engine; the read path stays read-only.
    auth = msgspec.structs.replace(TEST_AUTH, key_usage_interval_seconds=interval)
    return make_settings(database, redis=redis, auth=auth, features=FeatureSettings(ingest=ingest))


@pytest.fixture
async def owner(migrated_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database, database_url(migrated_database))
    yield engine
    await engine.dispose()


async def new_key(owner: AsyncEngine, settings: Settings, *, role: str = "developer") -> tuple[str, str]:
    raw, info = await ApiKeyAdmin(owner).create(name="usage", role=role, secret_key=secret_key_of(settings))
    return raw, info.id


async def last_used(owner: AsyncEngine, key_id: str) -> datetime | None:
    k = tables.api_keys
    async with owner.connect() as conn:
        return (await conn.execute(select(k.c.last_used_at).where(k.c.id == key_id))).scalar_one()


@contextmanager
def key_updates(engine: AsyncEngine) -> Iterator[list[str]]:
    """The UPDATE statements `engine` sends to api_keys while the block runs."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


def recorder_of(client: AsyncTestClient[Any]) -> KeyUsageRecorder:
    return client.app.state.key_usage  # type: ignore[no-any-return]


async def on_app_loop(client: AsyncTestClient[Any], function: Callable[[], Awaitable[None]]) -> None:
    """Run `function` on the event loop the app serves from (the test client's portal thread)."""
    await asyncio.to_thread(client.blocking_portal.call, function)


async def drain(client: AsyncTestClient[Any]) -> None:
    """Wait for the background last_used_at writes the requests so far started."""
    await on_app_loop(client, recorder_of(client).drain)


async def use(client: AsyncTestClient[Any], raw: str, times: int = 1) -> None:
    for _ in range(times):
        response = await client.get(MODELS, headers={"X-API-Key": raw})
        assert response.status_code == 200, response.text
    await drain(client)


async def test_using_a_key_records_last_used_at_once_per_interval_across_instances(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings, owner: AsyncEngine
) -> None:
    settings = settings_for(migrated_database, redis_settings)
    raw, key_id = await new_key(owner, settings)
    assert await last_used(owner, key_id) is None
    before = datetime.now(UTC)
    async with AsyncTestClient(create_app(settings)) as one, AsyncTestClient(create_app(settings)) as two:
        with (
            key_updates(one.app.state.resources.write_engine) as updates_one,
            key_updates(two.app.state.resources.write_engine) as updates_two,
        ):
            await use(one, raw, times=3)
            first = await last_used(owner, key_id)
            assert first is not None and before <= first <= datetime.now(UTC)
            assert len(updates_one) == 1
            # Within the interval: neither this worker nor another instance sharing Redis writes again.
            await use(one, raw, times=3)
            await use(two, raw, times=3)
            assert await last_used(owner, key_id) == first
            assert (len(updates_one), len(updates_two)) == (1, 0)
        # Operators see it in the admin listing.
        listing = await one.get("/api/v1/admin/api-keys", headers=auth_headers(settings, "admin"))
        [entry] = [k for k in listing.json()["data"] if k["id"] == key_id]
        assert datetime.fromisoformat(entry["last_used_at"]) == first


async def test_the_interval_ends_and_tokens_exchanged_from_a_key_count_as_its_use(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings, owner: AsyncEngine
) -> None:
    settings = settings_for(migrated_database, redis_settings, interval=1)
    raw, key_id = await new_key(owner, settings)
    async with AsyncTestClient(create_app(settings)) as client:
        exchanged = await client.post("/api/v1/auth/token", headers={"X-API-Key": raw})
        assert exchanged.status_code == 200
        await drain(client)
        first = await last_used(owner, key_id)
        assert first is not None
        await asyncio.sleep(1.1)
        bearer = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        assert (await client.get(MODELS, headers=bearer)).status_code == 200
        await drain(client)
        second = await last_used(owner, key_id)
        assert second is not None and second > first


async def test_a_revoked_key_is_refused_and_its_use_not_recorded(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings, owner: AsyncEngine
) -> None:
    settings = settings_for(migrated_database, redis_settings)
    raw, key_id = await new_key(owner, settings)
    await ApiKeyAdmin(owner).revoke(key_id)
    async with AsyncTestClient(create_app(settings)) as client:
        with key_updates(client.app.state.resources.write_engine) as updates:
            refused = await client.get(MODELS, headers={"X-API-Key": raw})
            assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
            await drain(client)
        assert updates == []
    assert await last_used(owner, key_id) is None


async def test_without_a_write_engine_nothing_is_recorded_and_requests_are_served(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings, owner: AsyncEngine
) -> None:
    settings = settings_for(migrated_database, redis_settings, ingest=False)
    raw, key_id = await new_key(owner, settings)
    async with AsyncTestClient(create_app(settings)) as client:
        assert client.app.state.resources.write_engine is None and not recorder_of(client).enabled
        await use(client, raw, times=2)
    assert await last_used(owner, key_id) is None


def engine_refusing_writes(database: DatabaseSettings) -> AsyncEngine:
    url = database_url(database)
    if is_sqlite(url):
        return create_engine(database, url, readonly=True)  # PRAGMA query_only
    return create_async_engine(url, connect_args={"server_settings": {"default_transaction_read_only": "on"}})


async def test_a_failing_write_is_logged_and_never_fails_the_request(
    migrated_database: DatabaseSettings,
    redis_settings: RedisSettings,
    owner: AsyncEngine,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = settings_for(migrated_database, redis_settings)
    raw, key_id = await new_key(owner, settings)
    refusing = engine_refusing_writes(migrated_database)
    try:
        async with AsyncTestClient(create_app(settings)) as client:
            store = client.app.state.security_store
            client.app.state.key_usage = KeyUsageRecorder(engine=refusing, store=store, interval_seconds=300)
            await use(client, raw)
            # The JSON log line on stderr.
            assert '"message": "could not record API key use"' in capfd.readouterr().err
            # Its connections belong to the app's event loop.
            await on_app_loop(client, refusing.dispose)
    finally:
        await refusing.dispose()
    assert await last_used(owner, key_id) is None
