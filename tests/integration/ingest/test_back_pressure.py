"""Ingest under load: 429 past the exporter's rate limit, 503 when every write slot stays busy or
the database does not answer in time.

Every refusal carries Retry-After (the OpenTelemetry exporters retry on it) and stores nothing of
the refused export; an export already being written is not disturbed.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from litestar.testing import AsyncTestClient, TestClient
from sqlalchemy import func, select

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.tables import spans
from observatory_api.errors import DATABASE_RETRY_AFTER
from observatory_api.ingest.controller import RETRY_AFTER_SECONDS
from observatory_api.settings import DatabaseSettings, FeatureSettings, IngestSettings, RateLimitSettings, Settings
from tests.conftest import _pg_url, auth_headers, make_settings, scratch_database, table_locked
from tests.integration.ingest.test_otlp_ingest import otlp_json, record_spans, trace_id_of

JSON = {"Content-Type": "application/json"}


async def stored_spans(database: DatabaseSettings, trace_id: str) -> int:
    engine = create_engine(database, database_url(database))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).where(spans.c.trace_id == trace_id)) or 0)
    finally:
        await engine.dispose()


def ingest_settings(database: DatabaseSettings, **sections: object) -> Settings:
    return make_settings(database, features=FeatureSettings(ingest=True), **sections)


async def test_an_exporter_over_its_rate_limit_gets_429_with_retry_after(migrated_database: DatabaseSettings) -> None:
    settings = ingest_settings(migrated_database, rate_limit=RateLimitSettings(roles={"ingest": 2}))
    headers = {**auth_headers(settings, "ingest", subject="collector"), **JSON}
    exports = [record_spans("genai") for _ in range(3)]
    async with AsyncTestClient(create_app(settings)) as client:
        answers = [await client.post("/v1/traces", content=otlp_json(export), headers=headers) for export in exports]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert [await stored_spans(migrated_database, trace_id_of(export)) for export in exports] == [2, 2, 0]


async def test_busy_write_slots_answer_503_with_retry_after_and_store_nothing(pg_template: str) -> None:
    async with scratch_database(pg_template, label="busy") as name:
        database = DatabaseSettings(url=_pg_url(name))
        settings = ingest_settings(database, ingest=IngestSettings(max_concurrent_writes=1))
        headers = {**auth_headers(settings, "ingest"), **JSON}
        first, second = record_spans("genai"), record_spans("openinference")
        # The sync client from threads: AsyncTestClient runs each request to its end before the
        # next statement of the test, so two could never be in flight at once.
        with TestClient(create_app(settings)) as client:
            async with table_locked(name, "spans", "SHARE") as watcher:
                writing = asyncio.create_task(
                    asyncio.to_thread(client.post, "/v1/traces", content=otlp_json(first), headers=headers)
                )
                await _until_a_write_waits_on_the_lock(watcher, name)
                started = time.monotonic()
                refused = await asyncio.to_thread(client.post, "/v1/traces", content=otlp_json(second), headers=headers)
                waited = time.monotonic() - started
            accepted = await writing  # the lock is gone: the first export completes

        assert refused.status_code == 503
        assert refused.headers["retry-after"] == RETRY_AFTER_SECONDS
        assert refused.json()["detail"] == "ingest is busy; retry later"
        assert waited >= 1.5  # it waited for a slot before giving up
        assert accepted.status_code == 200
        assert await stored_spans(database, trace_id_of(first)) == 2
        assert await stored_spans(database, trace_id_of(second)) == 0


async def test_a_write_the_database_does_not_finish_in_time_answers_503_and_stores_nothing(pg_template: str) -> None:
    async with scratch_database(pg_template, label="slow") as name:
        database = DatabaseSettings(url=_pg_url(name), statement_timeout_ms=300)
        settings = ingest_settings(database)
        headers = {**auth_headers(settings, "ingest"), **JSON}
        export = record_spans("genai")
        async with AsyncTestClient(create_app(settings)) as client:
            async with table_locked(name, "spans", "SHARE"):  # writes wait, reads go on
                refused = await client.post("/v1/traces", content=otlp_json(export), headers=headers)
            assert await stored_spans(database, trace_id_of(export)) == 0
            # The exporter retries on 503; on a loaded machine a retry can hit the 300 ms timeout
            # too (CI at load 9), so it goes on as an exporter would, a bounded number of times.
            for _ in range(10):
                retried = await client.post("/v1/traces", content=otlp_json(export), headers=headers)
                if retried.status_code != 503:
                    break

        assert refused.status_code == 503
        assert refused.headers["retry-after"] == DATABASE_RETRY_AFTER
        assert refused.json()["type"].endswith("/database-timeout")
        assert retried.status_code == 200  # what the exporter does next succeeds, once
        assert await stored_spans(database, trace_id_of(export)) == 2


async def _until_a_write_waits_on_the_lock(watcher: asyncpg.Connection, database: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the first export never reached the locked table")
