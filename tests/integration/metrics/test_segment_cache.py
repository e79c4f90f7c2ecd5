"""The segment cache through the real app: closed rollup segments are kept between queries, and a
late span written through this process's ingest counts in the very next answer (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import event

from observatory_api.app import create_app
from observatory_api.metrics.segment_cache import SegmentCache
from observatory_api.settings import DatabaseSettings, FeatureSettings, ServerSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.ingest.payloads import encoded, key_values, new_trace_id, span, trace_request

URL = "/api/v1/metrics/query"
# A statement over the rollup tables, their continuous aggregates or their materialised rows.
_ROLLUP_READ = re.compile(r"FROM \S*(metric_rollup_|metric_cagg_|_materialized_hypertable_)")


def llm_call(at: datetime, index: int) -> Any:
    """A one-second chat call of gpt-4o that started at `at`."""
    start = int(at.timestamp() * 1e9)
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    return span(
        new_trace_id(),
        index,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000_000,
        attributes=key_values({**attributes, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}),
    )


async def test_a_late_span_in_a_closed_bucket_counts_at_once(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database, features=FeatureSettings(ingest=True))
    reader, writer = auth_headers(settings, "developer"), auth_headers(settings, "ingest")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # Whole closed days and hours, read from the rollups: every segment is cacheable.
    body = {
        "from": (now - timedelta(days=3)).isoformat(),
        "to": (now - timedelta(hours=1)).isoformat(),
        "metrics": [{"id": "request_count"}, {"id": "span_count"}, {"id": "latency_ms", "aggregation": "p50"}],
        "group_by": ["model"],
        "source": "rollup",
    }

    async def ask(client: AsyncTestClient[Any]) -> dict[str, Any]:
        response = await client.post(URL, json=body, headers=reader)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def send(client: AsyncTestClient[Any], at: datetime, index: int) -> None:
        content, headers = encoded(trace_request([llm_call(at, index)]), "protobuf")
        response = await client.post("/v1/traces", content=content, headers={**writer, **headers})
        assert response.status_code == 200, response.text

    async with AsyncTestClient(create_app(settings)) as client:
        cache: SegmentCache = client.app.state.resources.metric_segments
        assert (await ask(client))["totals"]["request_count_count"] == 0
        kept = len(cache)
        assert kept > 0
        assert (await ask(client))["totals"]["request_count_count"] == 0  # from the cache

        await send(client, now - timedelta(days=2, minutes=-7), 0)  # late: two days back
        first = await ask(client)
        assert first["totals"]["request_count_count"] == 1
        assert first["totals"]["span_count_count"] == 1
        assert [s["group"]["model"] for s in first["series"]] == ["openai/gpt-4o"]

        # A write outside the window leaves its segments alone; one inside drops only those.
        before = len(cache)
        await send(client, now - timedelta(days=10), 1)
        assert len(cache) == before
        await send(client, now - timedelta(days=1, hours=5), 2)
        assert len(cache) < before
        second = await ask(client)
        assert second["totals"]["request_count_count"] == 2
        raw = await client.post(URL, json={**body, "source": "raw"}, headers=reader)
        assert raw.json()["totals"]["request_count_count"] == 2
        assert second["totals"]["latency_ms_p50"] == raw.json()["totals"]["latency_ms_p50"]


async def test_no_cache_without_ingest_in_the_process(migrated_database: DatabaseSettings) -> None:
    """Without Redis, a reader that does not write cannot know when data changes: it keeps nothing."""
    settings = make_settings(migrated_database, features=FeatureSettings(ingest=False))
    async with AsyncTestClient(create_app(settings)) as client:
        assert client.app.state.resources.metric_segments is None


async def test_no_cache_without_redis_in_several_workers(migrated_database: DatabaseSettings) -> None:
    """Each worker would hear only of its own writes: without Redis only a single worker caches."""
    settings = make_settings(migrated_database, features=FeatureSettings(ingest=True), server=ServerSettings(workers=2))
    async with AsyncTestClient(create_app(settings)) as client:
        assert client.app.state.resources.metric_segments is None


async def test_a_series_by_minute_is_kept_by_the_hour_and_a_late_span_drops_its_hour(
    migrated_database: DatabaseSettings,
) -> None:
    settings = make_settings(migrated_database, features=FeatureSettings(ingest=True))
    reader, writer = auth_headers(settings, "developer"), auth_headers(settings, "ingest")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    body = {
        "from": (now - timedelta(hours=7)).isoformat(),
        "to": (now - timedelta(hours=1)).isoformat(),
        "metrics": [{"id": "request_count"}],
        "interval": "minute",
        "source": "rollup",
    }
    async with AsyncTestClient(create_app(settings)) as client:
        cache: SegmentCache = client.app.state.resources.metric_segments
        first = await client.post(URL, json=body, headers=reader)
        assert first.status_code == 200, first.text
        assert len(cache) == 6  # six hours of minutes, one piece each
        late = now - timedelta(hours=3, minutes=-17)
        content, headers = encoded(trace_request([llm_call(late, 0)]), "protobuf")
        sent = await client.post("/v1/traces", content=content, headers={**writer, **headers})
        assert sent.status_code == 200, sent.text
        assert len(cache) == 5  # only the hour it fell in
        second = (await client.post(URL, json=body, headers=reader)).json()
        assert len(cache) == 6
        counts = {p["time"]: p["values"]["request_count_count"] for p in second["series"][0]["points"]}
        assert sum(counts.values()) == 1
        assert counts[late.replace(second=0).isoformat().replace("+00:00", "Z")] == 1


async def test_every_rollup_segment_is_read_in_one_statement_and_kept_apart(
    migrated_database: DatabaseSettings,
) -> None:
    """Days, hours and minutes at either end: one statement reads them all (metrics/parts.py), the
    cache still keeps each segment, and the answer is the one raw spans give."""
    settings = make_settings(migrated_database, features=FeatureSettings(ingest=True))
    reader, writer = auth_headers(settings, "developer"), auth_headers(settings, "ingest")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # In the first two hours of a day the start's hours (23:00 to midnight) or the end's (midnight
    # to 00:00) would be empty: four segments, not five (CI at 00:47 UTC). Two hours back has all.
    now -= timedelta(hours=2) if now.hour < 2 else timedelta(0)
    start, end = now - timedelta(days=3, minutes=17, seconds=5), now - timedelta(hours=1, minutes=-7, seconds=-3)
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "metrics": [{"id": "request_count"}, {"id": "latency_ms", "aggregation": "p50"}],
        "group_by": ["model"],
        "source": "rollup",
    }
    # One span in each segment: the minutes and the hours of the start, the days, the end's hours
    # and minutes, and the raw edges.
    moments = [start + timedelta(seconds=20), start + timedelta(minutes=30), now - timedelta(days=1, hours=5)]
    moments += [end - timedelta(hours=1, minutes=30), end - timedelta(minutes=3), end - timedelta(seconds=1)]
    async with AsyncTestClient(create_app(settings)) as client:
        for index, at in enumerate(moments):
            content, headers = encoded(trace_request([llm_call(at, index)]), "protobuf")
            sent = await client.post("/v1/traces", content=content, headers={**writer, **headers})
            assert sent.status_code == 200, sent.text
        cache: SegmentCache = client.app.state.resources.metric_segments
        statements: list[str] = []
        engine = client.app.state.resources.read_engine
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        first = await client.post(URL, json=body, headers=reader)
        assert first.status_code == 200, first.text
        rollup_reads = [s for s in statements if _ROLLUP_READ.search(s)]
        assert len(rollup_reads) == 1, rollup_reads
        assert rollup_reads[0].count("UNION ALL") == 4  # the five rollup segments
        assert len(cache) == 5
        statements.clear()
        again = await client.post(URL, json=body, headers=reader)
        assert not [s for s in statements if _ROLLUP_READ.search(s)]  # every segment from the cache
        raw = await client.post(URL, json={**body, "source": "raw"}, headers=reader)
    assert first.json()["totals"]["request_count_count"] == len(moments)
    for answer in (again.json(), raw.json()):
        assert answer["totals"]["request_count_count"] == len(moments)
        assert answer["series"][0]["totals"] == first.json()["series"][0]["totals"]
