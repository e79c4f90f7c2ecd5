"""The writer keeps the rollups: same transaction, only new spans, prices spans without a cost;
migration 0003 backfills spans stored before it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import spans
from observatory_api.demo.generator import generate
from observatory_api.metrics.histogram import histogram_of
from observatory_api.metrics.rollup_tables import ROLLUP_TABLES, hist_columns
from observatory_api.metrics.rollups import all_rollup_rows, contribution
from observatory_api.models.catalogue_data import STARTER_MODELS
from observatory_api.models.pricing import ModelPrices, price_usage
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.conftest import run_migration

END = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)


def records(traces: int = 60, seed: int = 5) -> list[SpanRecord]:
    return [s for batch, _ in generate(traces=traces, seed=seed, end=END, days=2) for s in batch]


def expected_hourly(spans_: list[SpanRecord]) -> dict[tuple, dict]:
    grouped: dict[tuple, list[SpanRecord]] = defaultdict(list)
    for s in spans_:
        hour = s.start_time.replace(minute=0, second=0, microsecond=0)
        grouped[(hour, s.model_id, s.service_name, s.status, s.kind)].append(s)
    return {
        key: {
            "span_count": len(group),
            "input_tokens_sum": sum(s.input_tokens or 0 for s in group),
            "cost_usd_sum": sum(s.cost_usd or 0 for s in group),
            "duration_ms_max": max(s.duration_ms for s in group),
            "duration_hist": histogram_of([s.duration_ms for s in group]),
        }
        for key, group in grouped.items()
    }


async def stored_hourly(engine: AsyncEngine) -> dict[tuple, dict]:
    table = ROLLUP_TABLES["hour"]
    hist = hist_columns("duration_ms")
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).mappings().all()
    found: dict[tuple, dict] = {}
    for row in rows:
        key = (row["bucket"], row["model_id"], row["service_name"], row["status"], row["kind"])
        entry = found.setdefault(
            key,
            {
                "span_count": 0,
                "input_tokens_sum": 0,
                "cost_usd_sum": 0.0,
                "duration_ms_max": 0.0,
                "duration_hist": [0] * len(hist),
            },
        )
        entry["span_count"] += row["span_count"]
        entry["input_tokens_sum"] += row["input_tokens_sum"]
        entry["cost_usd_sum"] += row["cost_usd_sum"]
        entry["duration_ms_max"] = max(entry["duration_ms_max"], row["duration_ms_max"])
        entry["duration_hist"] = [a + (row[c] or 0) for a, c in zip(entry["duration_hist"], hist, strict=True)]
    return found


def assert_same(found: dict, wanted: dict) -> None:
    assert found.keys() == wanted.keys()
    for key, values in wanted.items():
        got = found[key]
        assert got["span_count"] == values["span_count"]
        assert got["input_tokens_sum"] == values["input_tokens_sum"]
        assert abs(got["cost_usd_sum"] - values["cost_usd_sum"]) <= 1e-9 * max(values["cost_usd_sum"], 1)
        assert got["duration_ms_max"] == values["duration_ms_max"]
        assert got["duration_hist"] == values["duration_hist"]


async def test_rollups_follow_writes_and_retries_add_nothing(migrated_engine: AsyncEngine) -> None:
    spans_ = records()
    writer = TelemetryWriter(migrated_engine)
    half = len(spans_) // 2
    assert await writer.write_spans(spans_[:half]) == half
    # An overlapping retry: only the second half is new, and only it is added.
    assert await writer.write_spans(spans_) == len(spans_) - half
    assert await writer.write_spans(spans_) == 0
    assert_same(await stored_hourly(migrated_engine), expected_hourly(spans_))
    minute = ROLLUP_TABLES["minute"]
    async with migrated_engine.connect() as conn:
        total = (await conn.execute(select(func.sum(minute.c.span_count)))).scalar_one()
    assert total == len(spans_)


async def test_spans_without_a_cost_are_priced_from_the_catalogue(migrated_engine: AsyncEngine) -> None:
    catalogue = {m["id"]: ModelPrices.from_row(m) for m in STARTER_MODELS}
    originals = [s for s in records(20, seed=9) if s.cost_usd is not None and s.input_tokens]
    unpriced = [msgspec.structs.replace(s, cost_usd=None) for s in originals]
    await TelemetryWriter(migrated_engine).write_spans(unpriced)
    async with migrated_engine.connect() as conn:
        stored = dict((await conn.execute(select(spans.c.span_id, spans.c.cost_usd))).all())
    for span in originals:
        wanted = price_usage(
            catalogue[span.model_id or ""],  # the catalogue's ids are canonical model ids
            input_tokens=span.input_tokens or 0,
            output_tokens=span.output_tokens or 0,
            cache_read_input_tokens=span.cache_read_input_tokens or 0,
            cache_creation_input_tokens=span.cache_creation_input_tokens or 0,
            reasoning_output_tokens=span.reasoning_output_tokens or 0,
        )
        # The generator priced them with the same catalogue: the writer finds the same cost.
        assert abs(stored[span.span_id] - wanted) <= 1e-12
        assert abs(stored[span.span_id] - span.cost_usd) <= 1e-12


async def test_migration_backfills_spans_stored_before_it(
    migrated_engine: AsyncEngine, migrated_database: DatabaseSettings
) -> None:
    spans_ = records(30, seed=4)
    await TelemetryWriter(migrated_engine).write_spans(spans_)
    async with migrated_engine.begin() as conn:
        for table in ROLLUP_TABLES.values():
            await conn.execute(delete(table))
    await run_migration(migrated_engine, migrated_database, ("downgrade", "0002"), ("upgrade", "head"))
    assert_same(await stored_hourly(migrated_engine), expected_hourly(spans_))
    assert timedelta(0) < END - min(s.start_time for s in spans_)


def _squeezed(spans_: list[SpanRecord], starts: list[datetime]) -> list[SpanRecord]:
    """`spans_` moved to start at `starts` (in turn), their durations kept."""
    moved = []
    for i, s in enumerate(spans_):
        start = starts[i % len(starts)] + timedelta(milliseconds=i)
        moved.append(msgspec.structs.replace(s, start_time=start, end_time=start + (s.end_time - s.start_time)))
    return moved


@pytest.mark.parametrize(
    "starts",
    [
        # Live spans, all in one minute: the hour and day rows are the minute rows, re-bucketed.
        [datetime(2025, 3, 14, 17, 41, 3, tzinfo=UTC)],
        # The same combinations an hour apart: the hour rows are re-bucketed, the day rows are not.
        [datetime(2025, 3, 14, 10, 5, tzinfo=UTC), datetime(2025, 3, 14, 11, 5, tzinfo=UTC)],
        # Two minutes of one hour: hour rows of combinations in both are sent, the others re-bucketed.
        [datetime(2025, 3, 14, 17, 41, 3, tzinfo=UTC), datetime(2025, 3, 14, 17, 42, 3, tzinfo=UTC)],
        # Spread over two days (the generator's times): each table has rows of its own.
        [],
    ],
    ids=["one-minute", "two-hours", "two-minutes", "two-days"],
)
async def test_every_rollup_holds_exactly_what_its_own_aggregation_gives(
    migrated_engine: AsyncEngine, starts: list[datetime]
) -> None:
    """Whichever way the rows reach a table (re-bucketed from the minute rows or sent as its own),
    one batch into empty tables stores exactly the rows the writer's aggregation gives for it."""
    spans_ = records(80, seed=11)
    if starts:
        spans_ = _squeezed(spans_, starts)
    assert await TelemetryWriter(migrated_engine).write_spans(spans_) == len(spans_)
    async with migrated_engine.connect() as conn:
        stored_spans = [tuple(row) for row in await conn.execute(select(spans))]
        # In the order written: float sums depend on it.
        order = {(s.trace_id, s.span_id): i for i, s in enumerate(spans_)}
        stored_spans.sort(key=lambda row: order[(row[0], row[1])])
        wanted = all_rollup_rows([contribution(row) for row in stored_spans])
        for rollup, rows in wanted:
            table = rollup.table
            found = [list(row) for row in await conn.execute(select(table).order_by(table.c.bucket, table.c.dims_key))]
            assert found == rows, table.name
    by_table = {rollup.table.name: len(rows) for rollup, rows in wanted}
    if len(starts) == 1:
        assert by_table["metric_rollup_minute"] == by_table["metric_rollup_hour"] == by_table["metric_rollup_day"]
    if len(starts) == 2 and starts[1] - starts[0] == timedelta(hours=1):
        assert by_table["metric_rollup_minute"] == by_table["metric_rollup_hour"] > by_table["metric_rollup_day"]
