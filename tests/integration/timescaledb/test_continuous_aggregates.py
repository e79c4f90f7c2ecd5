"""TimescaleDB's continuous aggregates count every span stored within retention: at once above the
watermark (real-time aggregation), after the next run of the refresh policy below it (late spans,
backfills, however old). The policies' jobs run here when a test calls them (the test template's
jobs are unscheduled, tests/timescaledb.py), as the scheduler would run them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from litestar.testing import TestClient
from sqlalchemy import event

from observatory_api.app import create_app
from observatory_api.core.records import SpanRecord
from observatory_api.db.engine import create_engine, database_url
from observatory_api.demo.generator import generate
from observatory_api.metrics.continuous_aggregates import AGGREGATE_OF_ROLLUP
from observatory_api.settings import DatabaseSettings, FeatureSettings
from observatory_api.storage import TelemetryWriter
from tests.conftest import _pg_url, auth_headers, make_settings, scratch_database

NOW = datetime.now(UTC).replace(microsecond=0)
AGGREGATES = tuple(AGGREGATE_OF_ROLLUP.values())
MODEL_CALLS = {"llm", "embedding"}


@pytest_asyncio.fixture
async def database(pg_template: str) -> AsyncIterator[str]:
    async with scratch_database(pg_template, label="cagg") as name:
        yield name


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    settings = make_settings(DatabaseSettings(url=_pg_url(database)))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers.update(auth_headers(settings, "developer"))
        yield test_client


def spans_around(when: datetime, traces: int, seed: int) -> list[SpanRecord]:
    """Demo spans in the 2 hours before `when`, from `traces` traces over the day before it.

    The demo's daily traffic shape leaves the night hours nearly empty, so at some times of day a
    day of `traces` traces puts none in those 2 hours (the test then failed, in CI at 05:00 UTC):
    the day is generated again with twice the traces until the window holds some (bounded).
    """
    for total in (traces * 2**step for step in range(7)):
        records: list[SpanRecord] = []
        for batch, _ in generate(traces=total, seed=seed, end=when, days=1):
            records += [r for r in batch if r.start_time >= when - timedelta(hours=2)]
        if records:
            break
    return records


async def write(
    database: str, records: list[SpanRecord], on_stored: Callable[[datetime, datetime], None] | None = None
) -> None:
    settings = DatabaseSettings(url=_pg_url(database))
    engine = create_engine(settings, database_url(settings))
    try:
        await TelemetryWriter(engine, on_stored=on_stored).write_spans(records)
    finally:
        await engine.dispose()


async def run_refresh_policies(database: str) -> None:
    """One run of each aggregate's refresh policy, as the scheduler does every schedule interval."""
    conn = await asyncpg.connect(_pg_url(database))
    try:
        jobs = await conn.fetch(
            "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        )
        assert len(jobs) == len(AGGREGATES)
        for job in jobs:
            await conn.execute(f"CALL run_job({int(job['job_id'])})")
    finally:
        await conn.close()


def _moved(record: SpanRecord, start: datetime) -> SpanRecord:
    """A copy of `record` in a trace of its own, started at `start`."""
    trace_id = f"{record.trace_id[:-8]}{start:%H%M%S}00"
    return msgspec.structs.replace(
        record,
        trace_id=trace_id,
        parent_span_id=None,
        start_time=start,
        end_time=start + (record.end_time - record.start_time),
    )


async def watermark(database: str, views: str) -> datetime:
    """The lowest watermark of the aggregates named like `views`: below it they read materialised
    rows only."""
    conn = await asyncpg.connect(_pg_url(database))
    try:
        return await conn.fetchval(
            "SELECT min(_timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id))) "
            "FROM _timescaledb_catalog.continuous_agg WHERE user_view_name LIKE $1",
            views,
        )
    finally:
        await conn.close()


def counts(client: TestClient, start: datetime, end: datetime) -> dict[str, Any]:
    """request_count (model calls) over [start, end) from the aggregates and from the raw spans."""
    found = {}
    for source in ("rollup", "raw"):
        body = {"from": start.isoformat(), "to": end.isoformat(), "metrics": [{"id": "request_count"}]}
        response = client.post("/api/v1/metrics/query", json={**body, "source": source})
        assert response.status_code == 200, response.text
        assert response.json()["source"].startswith(source)
        found[source] = response.json()["totals"]["request_count_count"]
    return found


def in_window(records: list[SpanRecord], start: datetime, end: datetime) -> int:
    """The model calls of `records` started in [start, end)."""
    return sum(1 for r in records if start <= r.start_time < end and r.kind in MODEL_CALLS)


async def test_the_policies_reach_every_bucket_and_keep_what_spans_keep(database: str) -> None:
    conn = await asyncpg.connect(_pg_url(database))
    try:
        rows = await conn.fetch(
            "SELECT hypertable_name, proc_name, config, schedule_interval FROM timescaledb_information.jobs "
            "WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_retention')"
        )
    finally:
        await conn.close()
    refresh = [r for r in rows if r["proc_name"] == "policy_refresh_continuous_aggregate"]
    assert len(refresh) == len(AGGREGATES) == 6
    for row in refresh:
        assert '"start_offset": null' in row["config"]  # no bucket is too old to be materialised
        assert row["schedule_interval"] <= timedelta(hours=1)  # the documented bound on a late span
    retention = [json.loads(r["config"])["drop_after"] for r in rows if r["proc_name"] == "policy_retention"]
    assert retention == ["90 days"] * 8  # spans, logs and the six aggregates: the same 90 days


async def test_recent_late_and_backfilled_spans_all_count(database: str, client: TestClient) -> None:
    recent = spans_around(NOW, traces=120, seed=31)
    await write(database, recent)
    window = (NOW - timedelta(hours=3), NOW + timedelta(minutes=1))
    # Nothing materialised yet: real-time aggregation reads every span.
    assert counts(client, *window) == {"rollup": in_window(recent, *window), "raw": in_window(recent, *window)}
    await run_refresh_policies(database)
    assert counts(client, *window)["rollup"] == in_window(recent, *window)

    # Late spans (an exporter 2 hours behind) and backfills (60 and 89.5 days back, the last
    # beyond the old policies' window) land below the watermark.
    late = spans_around(NOW - timedelta(minutes=30), traces=150, seed=32)
    backfill_60 = spans_around(NOW - timedelta(days=60), traces=150, seed=33)
    backfill_89 = spans_around(NOW - timedelta(days=89, hours=12), traces=150, seed=34)
    for records in (late, backfill_60, backfill_89):
        assert records
        await write(database, records)
    # Counted once the policies have run (at most one schedule interval later).
    await run_refresh_policies(database)
    expected = in_window(recent, *window) + in_window(late, *window)
    assert counts(client, *window) == {"rollup": expected, "raw": expected}
    for records, when in ((backfill_60, 60), (backfill_89, 89.5)):
        start = NOW - timedelta(days=when) - timedelta(hours=3)
        end = start + timedelta(hours=4)
        assert counts(client, start, end) == {
            "rollup": in_window(records, start, end),
            "raw": in_window(records, start, end),
        }


def test_seed_leaves_the_rollup_tables_to_the_aggregates(database: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": _pg_url(database), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "observatory_api", "seed", "--traces", "60"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    async def totals() -> dict[str, int]:
        conn = await asyncpg.connect(_pg_url(database))
        try:
            found = {"spans": int(await conn.fetchval("SELECT count(*) FROM spans"))}
            for rollup, aggregate in AGGREGATE_OF_ROLLUP.items():
                found[rollup] = int(await conn.fetchval(f"SELECT count(*) FROM {rollup}"))
                found[aggregate] = int(await conn.fetchval(f"SELECT coalesce(sum(span_count), 0) FROM {aggregate}"))
            return found
        finally:
            await conn.close()

    found = asyncio.run(totals())
    assert found["spans"] > 100
    assert all(found[rollup] == 0 for rollup in AGGREGATE_OF_ROLLUP)
    assert all(found[aggregate] == found["spans"] for aggregate in AGGREGATES)


@pytest.fixture
def caching_client(database: str) -> Iterator[TestClient]:
    """A single worker that ingests: it keeps closed metric segments (docs/metrics.md)."""
    settings = make_settings(DatabaseSettings(url=_pg_url(database)), features=FeatureSettings(ingest=True))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        assert test_client.app.state.resources.metric_segments is not None
        test_client.headers.update(auth_headers(settings, "developer"))
        yield test_client


async def test_a_late_span_counts_as_soon_as_its_refresh_ran(database: str, caching_client: TestClient) -> None:
    # The metric segment cache: a late span changes the aggregates only when their refresh runs,
    # so a closed segment read between the write and that refresh must not be kept.
    client = caching_client
    recent = spans_around(NOW, traces=120, seed=41)
    # Closed segments only (hours and minutes that ended before now): the ones the cache keeps.
    window = (NOW - timedelta(hours=3), NOW - timedelta(minutes=6))
    # An aggregate's watermark is the end of its newest materialised bucket: at night the demo's
    # last spans can be an hour or more before NOW, leaving the late spans below above a watermark,
    # where real-time aggregation counts them at once (CI failed so at 23:37 UTC, and at 02:04 for
    # the hour aggregate). Two model calls put every watermark the window reads past them: one
    # just after the late spans (the minute aggregates), one in the last whole hour of the window
    # (the hour aggregate; its current hour is never materialised).
    model_call = next(r for r in recent if r.kind in MODEL_CALLS)
    whole_hours_end = window[1].replace(minute=0, second=0)
    recent += [
        _moved(model_call, NOW - timedelta(minutes=29)),
        _moved(model_call, whole_hours_end - timedelta(minutes=1)),
    ]
    await write(database, recent)
    await run_refresh_policies(database)  # the watermark moves up to a few minutes before now
    assert await watermark(database, "metric_cagg_minute%") > NOW - timedelta(minutes=30)
    assert await watermark(database, "metric_cagg_hour%") >= whole_hours_end  # and the overall one
    before = in_window(recent, *window)
    statements: list[str] = []

    def seen(*executed: Any) -> None:
        statements.append(executed[2])

    engine = client.app.state.resources.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    assert counts(client, *window) == {"rollup": before, "raw": before}
    event.remove(engine, "before_cursor_execute", seen)
    # The refresh checks of every segment missing from the cache (minutes, hours, minutes) in one
    # statement, before the read they guard.
    checks = [s for s in statements if "invalidation_log" in s]
    assert len(checks) == 1, checks
    assert checks[0].count("AS text)") >= 2
    assert statements.index(checks[0]) < next(
        i for i, s in enumerate(statements) if "metric_cagg_" in s or "_materialized_hypertable_" in s
    )

    late = spans_around(NOW - timedelta(minutes=30), traces=150, seed=42)
    assert in_window(late, *window)
    # Below the watermark: in `spans`, not yet in the aggregates; the segments it touched dropped
    # from the cache, as the app's own writer (or another's, through Redis) does.
    await write(database, late, on_stored=client.app.state.resources.metric_segments.invalidate)
    # A read before the refresh answers from the aggregates as they are...
    assert counts(client, *window)["rollup"] == before
    await run_refresh_policies(database)
    # ...and the first read after it counts the late spans (it got the state kept by the read
    # before, for up to that entry's 60 seconds).
    after = before + in_window(late, *window)
    assert counts(client, *window) == {"rollup": after, "raw": after}
    assert len(client.app.state.resources.metric_segments) > 0  # materialised: kept again
