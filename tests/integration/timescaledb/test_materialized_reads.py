"""The metric engine reads a continuous aggregate's materialised hypertable below its watermark and
raw spans above it (metrics/materialized.py), not the real-time view: the answers must be the
view's, before any refresh (all raw), after one (all materialised) and with late spans written
below the watermark (not counted until the next refresh, as through the view)."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from sqlalchemy import event

from observatory_api.db.capabilities import detect_capabilities
from observatory_api.db.engine import create_engine, database_url
from observatory_api.metrics import repository as metric_repository
from observatory_api.metrics.continuous_aggregates import AGGREGATE_VIEWS
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.schemas import MetricQuery
from observatory_api.settings import DatabaseSettings, QuerySettings
from tests.conftest import _pg_url, scratch_database
from tests.integration.timescaledb.test_continuous_aggregates import run_refresh_policies, spans_around, write

P = ("p50", "p95", "p99")
QUERIES: dict[str, dict[str, Any]] = {
    # minute aggregates (overall, then by model), an hour, and whole hours with minute edges
    "by minute": {
        "metrics": [
            {"id": "request_count"},
            {"id": "cost_usd", "aggregation": "sum"},
            {"id": "latency_ms", "aggregation": "p95"},
        ],
        "interval": "minute",
    },
    "by model per 5m": {
        "metrics": [{"id": "latency_ms", "aggregation": p} for p in P] + [{"id": "error_count"}],
        "group_by": ["model"],
        "interval": "5m",
    },
    "totals by model": {
        "metrics": [{"id": "latency_ms", "aggregation": p} for p in P] + [{"id": "total_tokens", "aggregation": "sum"}],
        "group_by": ["model"],
    },
}


def same_answer(a: Any, b: Any) -> bool:
    """Equal, but float sums within 1e-12: the view sums the spans above its watermark per group
    first, the direct read per bucket (the order of a float sum; counts and percentiles are exact)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_answer(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_answer(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest_asyncio.fixture
async def database(pg_template: str) -> AsyncIterator[str]:
    async with scratch_database(pg_template, label="matread") as name:
        yield name


async def answers(
    database: str, now: datetime, *, direct: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, bytes], list[str]]:
    """Every query's answer (JSON), and the statements run; `direct=False` reads the views."""
    settings = DatabaseSettings(url=_pg_url(database))
    engine = create_engine(settings, database_url(settings))
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with monkeypatch.context() as patch:
        if not direct:  # as if this role could not read the hypertables: the views, as before

            async def nothing(conn: Any) -> dict[str, Any]:
                return {}

            patch.setattr(metric_repository, "materialized", nothing, raising=False)
        try:
            capabilities = await detect_capabilities(engine, continuous_aggregates=AGGREGATE_VIEWS)
            assert capabilities.continuous_aggregates
            repository = MetricRepository(engine, capabilities)
            found = {}
            for name, body in QUERIES.items():
                window = {"from": now - timedelta(hours=3, minutes=7), "to": now + timedelta(minutes=2)}
                query = msgspec.convert({**body, **window, "source": "rollup"}, MetricQuery)
                plan = plan_query(query, QuerySettings(), allow_content=False)
                found[name] = msgspec.json.encode(await repository.query(plan))
        finally:
            await engine.dispose()
    return found, statements


async def test_materialised_rows_and_raw_spans_answer_as_the_view(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Taken here, not at import: the watermark follows the clock (end_offset 5 minutes).
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    recent = spans_around(now, traces=150, seed=41)
    # Model calls in the last minutes too: above the watermark after a refresh (end_offset 5 min).
    calls = [r for r in recent if r.kind in ("llm", "embedding")][:40]
    assert calls
    fresh = [
        msgspec.structs.replace(
            r,
            trace_id=uuid.uuid4().hex,
            parent_span_id=None,
            start_time=now - timedelta(seconds=5 + 4 * i),
            end_time=now - timedelta(seconds=5 + 4 * i) + (r.end_time - r.start_time),
        )
        for i, r in enumerate(calls)
    ]
    await write(database, recent + fresh)

    async def same() -> list[str]:
        direct, statements = await answers(database, now, direct=True, monkeypatch=monkeypatch)
        view, _ = await answers(database, now, direct=False, monkeypatch=monkeypatch)
        for name in QUERIES:
            assert same_answer(msgspec.json.decode(direct[name]), msgspec.json.decode(view[name])), name
        assert b'"request_count_count":0' not in direct["by minute"].split(b'"totals"')[-1]  # spans counted
        return statements

    # Nothing materialised: everything comes from raw spans, through the view or not.
    await same()
    await run_refresh_policies(database)
    statements = await same()
    conn = await asyncpg.connect(_pg_url(database))
    try:
        minute = await conn.fetchval(
            "SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id)) "
            "FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = 'metric_cagg_minute_overall'"
        )
    finally:
        await conn.close()
    assert now - timedelta(hours=3) < minute <= now - timedelta(minutes=2)  # rows below and above it
    # The materialised rows were read, the views never.
    assert any("_materialized_hypertable_" in s for s in statements)
    assert not any("metric_cagg_" in s for s in statements)
    # Late spans below the watermark, and recent ones: the view counts the late ones only after
    # the next refresh; so must the direct read.
    await write(database, spans_around(now - timedelta(minutes=40), traces=150, seed=42))
    await same()
    await run_refresh_policies(database)
    await same()
