"""A database that does not answer in time gets 503 problem JSON with Retry-After (REST) or a
DATABASE_TIMEOUT error (GraphQL), never a 500 or a masked internal error."""

from __future__ import annotations

import asyncio

import asyncpg
from litestar.testing import AsyncTestClient

from observatory_api.app import create_app
from observatory_api.db.engine import PING_AFTER_IDLE_SECONDS
from observatory_api.errors import DATABASE_RETRY_AFTER
from observatory_api.settings import CacheSettings, DatabaseSettings
from tests.conftest import ADMIN_URL, _pg_url, auth_headers, make_settings, scratch_database, table_locked


async def test_a_read_past_the_statement_timeout_answers_503_and_the_next_one_works(pg_template: str) -> None:
    async with scratch_database(pg_template, label="timeout") as name:
        settings = make_settings(DatabaseSettings(url=_pg_url(name), statement_timeout_ms=300))
        headers = auth_headers(settings, "developer")
        async with AsyncTestClient(create_app(settings)) as client:
            async with table_locked(name, "traces", "ACCESS EXCLUSIVE"):  # even reads wait
                refused = await client.get("/api/v1/traces", headers=headers)
                query = {"query": '{ trace(id: "%s") { id } }' % ("a" * 32)}
                graphql = (await client.post("/graphql", json=query, headers=headers)).json()
            answered = await client.get("/api/v1/traces", headers=headers)

    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == DATABASE_RETRY_AFTER
    problem = refused.json()
    assert problem["type"].endswith("/database-timeout")
    assert "narrow the time range" in problem["detail"]
    assert "statement" not in problem["detail"]  # nothing of the SQL or the driver leaks
    assert answered.status_code == 200  # the refusal was not cached
    (error,) = graphql["errors"]
    assert error["extensions"]["code"] == "DATABASE_TIMEOUT"
    assert error["message"] == problem["detail"]


async def _close_the_apps_connections(database: str) -> int:
    """Terminate the server side of every pooled connection of the app (as a restart would)."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        closed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(closed)
    finally:
        await admin.close()


async def test_connections_the_server_closed_while_idle_are_replaced_before_a_read(pg_template: str) -> None:
    """The pool pings a connection that was idle for over PING_AFTER_IDLE_SECONDS: a connection the
    server closed meanwhile is replaced, and no request sees it."""
    async with scratch_database(pg_template, label="closed") as name:
        settings = make_settings(DatabaseSettings(url=_pg_url(name)), cache=CacheSettings(enabled=False))
        headers = auth_headers(settings, "developer")
        async with AsyncTestClient(create_app(settings)) as client:
            assert (await client.get("/api/v1/traces", headers=headers)).status_code == 200
            assert await _close_the_apps_connections(name) >= 1
            await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.3)
            answers = [await client.get("/api/v1/spans", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]


async def test_a_connection_closed_under_steady_use_fails_one_read_as_503_and_the_next_reconnects(
    pg_template: str,
) -> None:
    """Within PING_AFTER_IDLE_SECONDS of its last use a connection is handed out unchecked: when
    the server closed it, that one read is a 503 problem (never a 500), and it invalidates the
    pool, so the next read reconnects."""
    async with scratch_database(pg_template, label="closed") as name:
        settings = make_settings(DatabaseSettings(url=_pg_url(name)), cache=CacheSettings(enabled=False))
        headers = auth_headers(settings, "developer")
        async with AsyncTestClient(create_app(settings)) as client:
            assert (await client.get("/api/v1/traces", headers=headers)).status_code == 200
            await _close_the_apps_connections(name)
            await asyncio.sleep(0.2)  # the backends have exited; the pool has not looked
            failed = await client.get("/api/v1/traces", headers=headers)
            answered = await client.get("/api/v1/traces", headers=headers)
    assert failed.status_code == 503, failed.text
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert answered.status_code == 200
