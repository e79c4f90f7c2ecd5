"""The answer of a metric query, assembled from the states MetricRepository read: series in group
order with their totals and points, ordered and limited as the plan asks."""

from __future__ import annotations

from observatory_api.core.errors import InvalidInput
from observatory_api.metrics.plan import MAX_POINTS, Plan
from observatory_api.metrics.schemas import MetricPoint, MetricQueryResult, MetricSeries
from observatory_api.metrics.states import (
    Exact,
    GroupKey,
    Level,
    Percentiles,
    States,
    ValuesOf,
    exact_at,
    point_values,
    values_of,
)


def assemble(plan: Plan, points: Level, series: Level, totals: Level, exact: Percentiles) -> MetricQueryResult:
    """The answer: every series (in group order, then ordered and limited as asked) with its totals
    and, for a bucketed query, a point per bucket; refused when it would hold more than MAX_POINTS."""
    nkeys = len(plan.group_by)
    bucketed = plan.interval_seconds is not None
    if not nkeys and "totals" in exact:
        exact["series"] = exact["totals"]
    keys = sorted(series, key=_group_order) if nkeys else [()]
    reading = point_values(tuple(plan.selections))
    all_series = []
    for key in keys:
        entry = MetricSeries(
            group={name: key[i] for i, name in enumerate(plan.group_by)},
            totals=values_of(plan.selections, series.get(key, {}), exact_at(exact, "series", key)),
        )
        if bucketed:
            entry.points = _points(plan, key, points, exact.get("points"), reading)
        all_series.append(entry)
    if plan.order_key is not None:
        all_series = _ordered(all_series, plan.order_key, plan.descending)
    if plan.limit is not None:
        all_series = all_series[: plan.limit]
    if len(all_series) * max(len(plan.buckets), 1) > MAX_POINTS:
        raise InvalidInput.field(
            "group_by",
            f"the answer would hold more than {MAX_POINTS} points; add a limit or a coarser interval",
            "body",
        )
    source = "raw" if plan.grain is None else f"rollup_{plan.grain}"
    return MetricQueryResult(
        from_=plan.window.start,
        to=plan.window.end,
        interval=plan.interval,
        source=source,
        series=all_series,
        totals=values_of(plan.selections, totals.get((), {}), exact_at(exact, "totals", ())),
    )


def _points(
    plan: Plan, key: GroupKey, points: Level, exact: dict[GroupKey, Exact] | None, reading: ValuesOf
) -> list[MetricPoint]:
    """A point per bucket of the series `key`. A day by minute has 1,440: no per-point lookup of
    exact percentiles when none were read (rollups), one call per point for all its values, and
    the values of an empty bucket computed once (a copy per point)."""
    found = []
    none: States = {}
    nothing: Exact = {}
    empty = reading(none, nothing)
    for start in plan.buckets:
        bucket_key = (*key, start)
        states = points.get(bucket_key)
        at = nothing if exact is None else exact.get(bucket_key, nothing)
        if states is None:
            if at is nothing:
                found.append(MetricPoint(time=start, values=dict(empty)))
                continue
            states = none
        found.append(MetricPoint(time=start, values=reading(states, at)))
    return found


def _group_order(key: GroupKey) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, "" if value is None else str(value)) for value in key)


def _ordered(series: list[MetricSeries], key: str, descending: bool) -> list[MetricSeries]:
    present = [(value, s) for s in series if (value := s.totals.get(key)) is not None]
    missing = [s for s in series if s.totals.get(key) is None]
    present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep group order
    return [s for _, s in present] + missing
