"""Planning metric queries: intervals, alignment and the choice between raw spans and rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from observatory_api.core.errors import InvalidInput
from observatory_api.core.query import TimeWindow
from observatory_api.metrics.plan import Plan, aligned, auto_interval, plan_query, rollup_for, segments
from observatory_api.metrics.schemas import MetricQuery, MetricSelection
from observatory_api.settings import QuerySettings

END = datetime(2026, 11, 20, tzinfo=UTC)
LIMITS = QuerySettings()


def plan(days: float, **fields: object) -> Plan:
    body = MetricQuery(
        metrics=fields.pop("metrics", [MetricSelection(id="request_count")]),  # type: ignore[arg-type]
        from_=END - timedelta(days=days),
        to=END,
        **fields,  # type: ignore[arg-type]
    )
    return plan_query(body, LIMITS, allow_content=True)


@pytest.mark.parametrize(
    ("span", "interval"),
    [
        (timedelta(hours=1), "minute"),
        (timedelta(hours=24), "15m"),
        (timedelta(days=7), "hour"),
        (timedelta(days=30), "day"),
    ],
)
def test_auto_interval_is_about_fifty_buckets(span: timedelta, interval: str) -> None:
    assert auto_interval(TimeWindow(start=END - span, end=END)) == interval


def test_aligned_keeps_whole_buckets_only() -> None:
    window = TimeWindow(start=END - timedelta(hours=5, minutes=30), end=END - timedelta(minutes=10))
    inner = aligned(window, 3600)
    assert inner == TimeWindow(start=END - timedelta(hours=5), end=END - timedelta(hours=1))
    assert aligned(TimeWindow(start=END - timedelta(minutes=20), end=END - timedelta(minutes=5)), 3600) is None


def test_source_choice() -> None:
    assert plan(30).grain == "day"
    assert plan(30, interval="hour").grain == "hour"
    assert plan(1, interval="minute").grain == "minute"
    assert plan(1 / 24).grain is None  # an hour: raw, exact
    assert plan(30, source="raw").grain is None
    assert plan(30, metrics=[MetricSelection(id="trace_count")]).grain is None
    assert plan(30, group_by=["user_id"], order_by="-request_count_count", limit=5).grain is None
    assert plan(30, filter={"field": "model", "op": "eq", "value": "gpt-4o"}).grain == "day"
    assert plan(30, filter={"field": "user_id", "op": "eq", "value": "u"}).grain is None
    assert plan(1 / 24, source="rollup").grain == "hour"
    with pytest.raises(InvalidInput) as refused:
        plan(30, metrics=[MetricSelection(id="cost_usd", aggregation="p50")], source="rollup")
    assert refused.value.errors[0].field == "source"


def test_segments_use_the_coarsest_whole_buckets_then_finer_ones() -> None:
    start = END - timedelta(days=3, hours=5, minutes=7, seconds=30)
    end = END - timedelta(minutes=2, seconds=5)
    parts = segments(TimeWindow(start=start, end=end), ["minute", "hour", "day"])
    assert [g for g, _ in parts] == [None, "minute", "hour", "day", "hour", "minute", None]
    assert parts[0][1].start == start and parts[-1][1].end == end
    assert all(a[1].end == b[1].start for a, b in pairwise(parts))
    assert parts[3][1] == TimeWindow(start=END - timedelta(days=3), end=END - timedelta(days=1))


def test_the_smallest_rollup_that_holds_the_dimensions_is_read() -> None:
    by_minute = plan(1, interval="minute")
    assert rollup_for(by_minute, "minute").table.name == "metric_rollup_minute_overall"
    grouped = plan(1, interval="minute", group_by=["model"])
    assert rollup_for(grouped, "minute").table.name == "metric_rollup_minute"
    filtered = plan(1, interval="minute", filter={"field": "environment", "op": "eq", "value": "production"})
    assert rollup_for(filtered, "minute").table.name == "metric_rollup_minute"
    assert rollup_for(plan(1, filter={"field": "kind", "op": "eq", "value": "llm"}), "minute").table.name == (
        "metric_rollup_minute_overall"
    )
    # Hours and days too (migration 0014), unless a dimension they lack is grouped, filtered or
    # read by a metric's condition.
    for grain in ("hour", "day"):
        assert rollup_for(plan(7), grain).table.name == f"metric_rollup_{grain}_overall"
        assert rollup_for(plan(7, group_by=["status"]), grain).table.name == f"metric_rollup_{grain}_overall"
        assert rollup_for(plan(7, group_by=["provider"]), grain).table.name == f"metric_rollup_{grain}"
        assert rollup_for(filtered, grain).table.name == f"metric_rollup_{grain}"
        unpriced = plan(7, metrics=[MetricSelection(id="unpriced_calls")])
        assert rollup_for(unpriced, grain).table.name == f"metric_rollup_{grain}"
