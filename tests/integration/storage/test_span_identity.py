"""A span is one (trace_id, span_id): a second one at another start time is refused on every backend.

SQLite and PostgreSQL come from the shared fixtures; TimescaleDB (hypertables, whose unique
indexes must hold the time column) runs where `/work/shared/timescaledb/start.sh` serves it on
127.0.0.1:5433 (`OBSERVATORY_TEST_TIMESCALEDB_URL`), and is skipped where it does not run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.db.tables import spans, traces
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import TelemetryWriter
from tests.integration.ingest.helpers import counter, ingest_client
from tests.integration.ingest.payloads import encoded, new_trace_id, trace_request
from tests.integration.ingest.payloads import span as otlp_span
from tests.integration.storage.test_writer import span

TIMESCALEDB_URL = os.environ.get("OBSERVATORY_TEST_TIMESCALEDB_URL", "postgresql://postgres@127.0.0.1:5433/postgres")
LATER = timedelta(days=4, hours=21)  # what `seed` after `serve --demo` wrote: the same ids days apart


async def stored_rows(engine: AsyncEngine, table: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(select(table))).mappings()]


def moved(record: Any, by: timedelta, **fields: Any) -> Any:
    return msgspec.structs.replace(record, start_time=record.start_time + by, end_time=record.end_time + by, **fields)


async def check_one_span_per_id(engine: AsyncEngine) -> None:
    writer = TelemetryWriter(engine)
    first = span("r", input_tokens=5)
    assert (await writer.store_spans([first])).stored == 1
    before = (await stored_rows(engine, spans), await stored_rows(engine, traces))

    second = moved(first, LATER, name="other", input_tokens=7)
    written = await writer.store_spans([second])

    assert (written.stored, written.conflicts) == (0, [(first.trace_id, first.span_id, second.start_time)])
    assert (await stored_rows(engine, spans), await stored_rows(engine, traces)) == before
    (row,) = before[0]
    assert (row["start_time"], row["name"]) == (first.start_time, first.name)
    # The same span again (a retried export) is no conflict: it is simply stored once.
    assert await writer.store_spans([first]) == type(written)(0, [])


async def test_a_second_span_with_the_same_ids_at_another_time_is_refused(migrated_engine: AsyncEngine) -> None:
    await check_one_span_per_id(migrated_engine)


async def test_the_same_ids_twice_in_one_batch_keep_the_first(migrated_engine: AsyncEngine) -> None:
    first = span("r")
    child = span("c", parent="r", offset_ms=10)
    written = await TelemetryWriter(migrated_engine).store_spans([first, moved(first, LATER), child])

    assert written.stored == 2 and len(written.conflicts) == 1
    assert sorted(row["start_time"] for row in await stored_rows(migrated_engine, spans)) == [
        first.start_time,
        child.start_time,
    ]


async def test_concurrent_batches_with_the_same_ids_store_one(migrated_engine: AsyncEngine) -> None:
    # Two writers (two workers): each commits alone, and the later sees what the earlier stored.
    first = span("r")
    results = await asyncio.gather(
        TelemetryWriter(migrated_engine).store_spans([first]),
        TelemetryWriter(migrated_engine).store_spans([moved(first, LATER)]),
    )

    assert sorted((result.stored, len(result.conflicts)) for result in results) == [(0, 1), (1, 0)]
    assert len(await stored_rows(migrated_engine, spans)) == 1


async def test_ingest_reports_the_refused_span_in_partial_success(migrated_database: DatabaseSettings) -> None:
    trace_id = new_trace_id()
    first = otlp_span(trace_id, 0)
    later = otlp_span(trace_id, 0, start_time_unix_nano=first.start_time_unix_nano + 3_600_000_000_000)
    later.end_time_unix_nano = later.start_time_unix_nano + 1_000_000
    before = counter("ingest_records_rejected_total", signal="spans", reason="span_id_conflict")
    async with ingest_client(migrated_database) as (client, credential):
        responses = []
        for one in (first, later):
            body, headers = encoded(trace_request([one]), "json")
            responses.append(await client.post("/v1/traces", content=body, headers={**credential, **headers}))

    assert [response.status_code for response in responses] == [200, 200]
    assert responses[0].json() == {}
    rejected = responses[1].json()["partialSuccess"]
    assert rejected["rejectedSpans"] == "1"
    assert f"span {'0' * 15}1 of trace {trace_id.hex()} is stored with another start time" in rejected["errorMessage"]
    assert counter("ingest_records_rejected_total", signal="spans", reason="span_id_conflict") - before == 1


# --------------------------------------------------------------------------- TimescaleDB


@pytest_asyncio.fixture
async def timescaledb_engine() -> AsyncIterator[AsyncEngine]:
    try:
        admin = await asyncpg.connect(TIMESCALEDB_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"no TimescaleDB at {TIMESCALEDB_URL} ({exc}); ../shared/timescaledb/start.sh serves one"
        if os.environ.get("CI"):  # .ci/run starts it: missing there is a failure, not a skip
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"observatory_test_tsdb_{uuid.uuid4().hex[:8]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        settings = DatabaseSettings(url=make_url(TIMESCALEDB_URL).set(database=name).render_as_string(False))
        engine = create_engine(settings, database_url(settings))
        try:
            await upgrade(engine, settings)
            async with engine.connect() as conn:
                hypertables = await conn.exec_driver_sql(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables"
                )
                assert "spans" in {row[0] for row in hypertables}
            yield engine
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_timescaledb_hypertables_refuse_the_second_span_too(timescaledb_engine: AsyncEngine) -> None:
    await check_one_span_per_id(timescaledb_engine)
