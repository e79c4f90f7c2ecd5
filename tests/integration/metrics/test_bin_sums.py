"""Histogram bins summed by `metric_bin_sum` (migration 0013) on PostgreSQL: every grain's bins as
bigints, so an hour row's bin past 2^31 sums exactly (int4 sums of hour rows raised "integer out of
range"), and 0013 going down and up again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.engine import create_engine, database_url
from observatory_api.metrics.histogram import representative
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.rollup_tables import metric_rollup_hour
from observatory_api.metrics.rollups import dims_key
from observatory_api.metrics.schemas import MetricQuery
from observatory_api.settings import DatabaseSettings, QuerySettings
from tests.conftest import _pg_url, run_migration, scratch_database

HOUR = datetime(2026, 11, 19, 10, tzinfo=UTC)
BIG = 3_000_000_000  # spans in one bin of one hour row: past an int4


def hour_row(bucket: datetime, model: str, low_bin: int, high_bin: int) -> dict[str, Any]:
    """An hour rollup row of `BIG` LLM calls in bin `low_bin` and `BIG` in `high_bin`."""
    dims = {"provider": "openai", "model_id": model, "service_name": "svc", "environment": None}
    dims |= {"status": "ok", "kind": "llm", "finish_reason": None, "cost_source": None}
    row: dict[str, Any] = {"bucket": bucket, "dims_key": dims_key(list(dims.values())), **dims}
    for column in metric_rollup_hour.columns:
        if column.name.endswith(("_count", "_sum")):
            row.setdefault(column.name, 0)
    low, high = representative(low_bin), representative(high_bin)
    row |= {"span_count": 2 * BIG, "duration_ms_count": 2 * BIG, "duration_ms_min": low, "duration_ms_max": high}
    row |= {f"duration_h{low_bin:03d}": BIG, f"duration_h{high_bin:03d}": BIG}
    return row


@pytest_asyncio.fixture
async def pg_engine(pg_template: str) -> AsyncIterator[AsyncEngine]:
    async with scratch_database(pg_template, label="binsum") as name:
        settings = DatabaseSettings(url=_pg_url(name))
        engine = create_engine(settings, database_url(settings))
        try:
            yield engine
        finally:
            await engine.dispose()


async def test_hour_bins_past_an_int4_sum_exactly(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:  # two models' rows in one hour: summed into one group
        for row in (hour_row(HOUR, "m1", 40, 60), hour_row(HOUR, "m2", 40, 80)):
            await conn.execute(metric_rollup_hour.insert().values(row))
    body = {
        "metrics": [{"id": "request_count"}, *({"id": "latency_ms", "aggregation": p} for p in ("p50", "p99"))],
        "interval": "hour",
        # A filter on a dimension the overall hour rollup lacks: the rollup of every dimension.
        "filter": {"field": "service", "op": "eq", "value": "svc"},
        "from": HOUR - timedelta(hours=2),
        "to": HOUR + timedelta(hours=2),
        "source": "rollup",
    }
    plan = plan_query(
        msgspec.convert(body, MetricQuery), QuerySettings(), allow_content=False, now=HOUR + timedelta(days=1)
    )
    # The rollup tables, as on plain PostgreSQL (also when the server has TimescaleDB).
    result = await MetricRepository(pg_engine, DatabaseCapabilities.plain(pg_engine)).query(plan)
    assert result.source == "rollup_hour"
    totals = result.totals
    assert totals["request_count_count"] == 4 * BIG
    # Half the values in bin 40: the median lies between its last and bin 60's first.
    assert totals["latency_ms_p50"] == pytest.approx((representative(40) + representative(60)) / 2)
    assert totals["latency_ms_p99"] == pytest.approx(representative(80))
    (point,) = [p for p in result.series[0].points if p.time == HOUR]
    assert point.values == totals


async def _has_bin_sum(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_aggregate WHERE aggfnoid::text = 'metric_bin_sum'"))
    finally:
        await conn.close()


async def test_0013_goes_down_and_up(pg_template: str) -> None:
    async with scratch_database(pg_template, label="binsum") as name:
        url = _pg_url(name)
        assert await _has_bin_sum(url)
        database = DatabaseSettings(url=url)
        engine = create_engine(database, database_url(database))
        try:
            await run_migration(engine, database, ("downgrade", "0012"))
            assert not await _has_bin_sum(url)
            await run_migration(engine, database, ("upgrade", "head"))
        finally:
            await engine.dispose()
        assert await _has_bin_sum(url)
