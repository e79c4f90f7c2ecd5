"""The overall hour and day rollups (migration 0014): a query that neither groups nor filters by a
dimension they lack reads them, and answers as the rollups of every dimension do; the writer
keeps them and the migration backfills them, going down and up again."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.demo.generator import generate
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.rollup_tables import MEASURES, metric_rollup_day_overall, metric_rollup_hour_overall
from observatory_api.metrics.schemas import MetricQuery
from observatory_api.settings import DatabaseSettings, QuerySettings
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.conftest import run_migration
from tests.integration.metrics.test_continuous_aggregates import close_answers

END = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)
OVERALL = (metric_rollup_hour_overall, metric_rollup_day_overall)
FLOAT_SUMS = {f"{measure}_sum" for measure, integer in MEASURES.items() if not integer}
# Whole days and hours with minute edges, by hour and by day, and the percentiles of the bins.
BODIES: list[dict[str, Any]] = [
    {
        "from": END - timedelta(days=3, hours=5, minutes=7),
        "to": END - timedelta(minutes=13),
        "metrics": [
            {"id": "request_count"},
            {"id": "error_rate"},
            {"id": "latency_ms", "aggregation": "p95"},
            {"id": "time_to_first_token_ms", "aggregation": "p50"},
            {"id": "cost_usd", "aggregation": "sum"},
            {"id": "total_tokens", "aggregation": "sum"},
            {"id": "latency_ms", "aggregation": "max"},
        ],
    },
    {
        "from": END - timedelta(days=2, minutes=30),
        "to": END,
        "interval": "hour",
        "metrics": [{"id": "request_count"}, {"id": "latency_ms", "aggregation": "p99"}, {"id": "cost_usd"}],
    },
    {
        "from": END - timedelta(days=3),
        "to": END,
        "interval": "day",
        "group_by": ["kind"],
        "metrics": [{"id": "span_count"}, {"id": "latency_ms", "aggregation": "p50"}],
    },
]
# A condition every span meets, on a dimension the overall rollups lack: the rollups of every dimension.
EVERY_SERVICE = {"field": "service", "op": "ne", "value": "no such service"}


def records() -> list[SpanRecord]:
    return [s for batch, _ in generate(traces=90, seed=23, end=END, days=3) for s in batch]


async def write(engine: AsyncEngine) -> None:
    spans_ = records()
    writer = TelemetryWriter(engine)  # the rollup tables, also on TimescaleDB
    for start in range(0, len(spans_), 200):  # several transactions: rows added to stored ones
        await writer.write_spans(spans_[start : start + 200])


async def answer(engine: AsyncEngine, body: dict[str, Any]) -> tuple[Any, list[str]]:
    statements: list[str] = []

    def seen(*executed: Any) -> None:
        statements.append(executed[2])

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        query = msgspec.convert({**body, "source": "rollup"}, MetricQuery)
        plan = plan_query(query, QuerySettings(), allow_content=False, now=END + timedelta(days=1))
        result = await MetricRepository(engine, DatabaseCapabilities.plain(engine)).query(plan)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    return msgspec.to_builtins(result), statements


async def test_overall_queries_read_the_overall_rollups_and_answer_as_every_dimension(
    migrated_engine: AsyncEngine,
) -> None:
    await write(migrated_engine)
    for body in BODIES:
        overall, statements = await answer(migrated_engine, body)
        every, every_statements = await answer(migrated_engine, {**body, "filter": EVERY_SERVICE})
        read = " ".join(statements)
        assert "metric_rollup_hour_overall" in read and not re.search(r"\bmetric_rollup_hour\b", read), body
        assert "metric_rollup_hour_overall" not in " ".join(every_statements)
        if "interval" not in body or body["interval"] == "day":
            assert "metric_rollup_day_overall" in read and not re.search(r"\bmetric_rollup_day\b", read)
        assert len(statements) == len(every_statements)  # the same parts, from other tables
        # Float sums (cost) are added up in another order from the overall rows: within 1e-9.
        assert overall["totals"] and close_answers(overall, every), body
        assert any(value for value in overall["totals"].values())


def stored(rows: list[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(row["bucket"], row["dims_key"]): dict(row) for row in rows}


async def overall_rows(engine: AsyncEngine) -> list[dict[tuple[Any, ...], dict[str, Any]]]:
    async with engine.connect() as conn:
        return [stored(list((await conn.execute(select(table))).mappings())) for table in OVERALL]


async def test_0014_backfills_what_the_writer_wrote_and_goes_down_and_up(
    migrated_engine: AsyncEngine, migrated_database: DatabaseSettings
) -> None:
    await write(migrated_engine)
    written = await overall_rows(migrated_engine)
    assert all(written)
    await run_migration(migrated_engine, migrated_database, ("downgrade", "0013"))
    async with migrated_engine.connect() as conn:
        names = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert "metric_rollup_minute_overall" in names
    assert not names & {table.name for table in OVERALL}
    await run_migration(migrated_engine, migrated_database, ("upgrade", "head"))
    # Summed from the hour and day rollups of every dimension: the writer's rows.
    for backfilled, wanted in zip(await overall_rows(migrated_engine), written, strict=True):
        assert backfilled.keys() == wanted.keys()
        for key, row in wanted.items():
            for column, value in row.items():
                if column in FLOAT_SUMS:
                    assert math.isclose(backfilled[key][column], value, rel_tol=1e-9, abs_tol=1e-12), (key, column)
                else:
                    assert backfilled[key][column] == value, (key, column)
