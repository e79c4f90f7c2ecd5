"""Validating a metric query against the catalogue and choosing where to answer it from.

Every name a client sends is looked up here; nothing it sends reaches SQL as text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from observatory_api.core.errors import InvalidInput
from observatory_api.core.filters import Condition, Group, Node, parse_filter, split_field
from observatory_api.core.query import TimeWindow, resolve_window
from observatory_api.db.filters import compile_span_filter
from observatory_api.db.metric_sql import BUCKET_ORIGIN_EPOCH
from observatory_api.metrics.catalogue import (
    ALIAS_PATTERN,
    DIMENSIONS,
    HIGH_CARDINALITY,
    INTERVALS,
    MAX_GROUP_BY,
    MAX_METRICS,
    MAX_TOP_N,
    METRICS,
    PERCENTILES,
    Metric,
)
from observatory_api.metrics.rollup_tables import GRAINS, ROLLUP_DIMENSIONS, ROLLUPS, Rollup
from observatory_api.metrics.schemas import MetricQuery, MetricSelection
from observatory_api.settings import QuerySettings

AUTO_BUCKETS = 50
MAX_BUCKETS = 2000
MAX_POINTS = 100_000  # series x buckets in one answer
# Up to this range `auto` reads raw spans (exact percentiles); beyond, the rollups when they can.
RAW_MAX_RANGE = timedelta(hours=2)
_ALIAS = re.compile(ALIAS_PATTERN)
_ROLLUP_FILTER_FIELDS = frozenset(ROLLUP_DIMENSIONS)


@dataclass(frozen=True, slots=True)
class Selection:
    metric: Metric
    aggregation: str
    key: str

    @property
    def percentile(self) -> float | None:
        return PERCENTILES.get(self.aggregation)


@dataclass(slots=True)
class Plan:
    selections: list[Selection]
    group_by: list[str]
    filter_node: Node | None
    allow_content: bool  # whether `filter_node` may read content: it is compiled again for each statement
    window: TimeWindow
    interval: str | None
    interval_seconds: int | None
    order_key: str | None
    descending: bool
    limit: int | None
    grain: str | None  # None: raw spans only; else the coarsest rollup grain read
    buckets: list[datetime] = field(default_factory=list)

    @property
    def top_n_in_sql(self) -> bool:
        """High-cardinality groups: the top-N is chosen in SQL before anything else is read."""
        return any(d in HIGH_CARDINALITY for d in self.group_by)

    @property
    def order_selection(self) -> Selection | None:
        return next((s for s in self.selections if s.key == self.order_key), None)


def plan_query(body: MetricQuery, limits: QuerySettings, *, allow_content: bool, now: datetime | None = None) -> Plan:
    """Validate `body`; without `allow_content`, a filter that could read content is a 400
    (core.content). Filters the service builds itself pass False: they never need content."""
    selections = _selections(body.metrics)
    group_by = _group_by(body.group_by)
    node = None
    if body.filter is not None:
        node = parse_filter(body.filter, max_nodes=limits.max_filter_nodes)
        compile_span_filter(node, allow_content=allow_content)  # checks every field and value now, as a 400
    window = resolve_window(body.from_, body.to, limits, now=now, source="body")
    interval, seconds = _interval(body.interval, window)
    buckets = bucket_starts(window, seconds) if seconds else []
    order_key, descending = _order(body.order_by, selections)
    limit = body.limit
    if limit is not None and not 1 <= limit <= MAX_TOP_N:
        raise InvalidInput.field("limit", f"must be between 1 and {MAX_TOP_N}", "body")
    if any(d in HIGH_CARDINALITY for d in group_by):
        high = next(d for d in group_by if d in HIGH_CARDINALITY)
        if order_key is None or limit is None:
            raise InvalidInput.field(
                "group_by", f"{high} has many values: group by it only as a top-N, with order_by and limit", "body"
            )
        order = next(s for s in selections if s.key == order_key)
        if order.percentile is not None:
            raise InvalidInput.field("order_by", "a top-N cannot be ordered by a percentile", "body")
    plan = Plan(
        selections=selections,
        group_by=group_by,
        filter_node=node,
        allow_content=allow_content,
        window=window,
        interval=interval,
        interval_seconds=seconds,
        order_key=order_key,
        descending=descending,
        limit=limit,
        grain=None,
        buckets=buckets,
    )
    plan.grain = choose_grain(plan, body.source)
    return plan


def _selections(raw: list[MetricSelection]) -> list[Selection]:
    if not raw:
        raise InvalidInput.field("metrics", "name at least one metric", "body")
    if len(raw) > MAX_METRICS:
        raise InvalidInput.field("metrics", f"at most {MAX_METRICS} metrics per query", "body")
    selections, keys = [], set()
    for i, item in enumerate(raw):
        metric = METRICS.get(item.id)
        if metric is None:
            raise InvalidInput.field(f"metrics[{i}].id", f"unknown metric {item.id!r}; see GET /metrics", "body")
        aggregation = item.aggregation or metric.default_aggregation
        if aggregation not in metric.aggregations:
            allowed = ", ".join(metric.aggregations)
            raise InvalidInput.field(
                f"metrics[{i}].aggregation", f"{aggregation!r} does not apply to {metric.id}; use {allowed}", "body"
            )
        if item.alias is not None and not _ALIAS.fullmatch(item.alias):
            raise InvalidInput.field(
                f"metrics[{i}].alias", "must be 1 to 64 letters, digits or _, not starting with a digit", "body"
            )
        key = item.alias or f"{metric.id}_{aggregation}"
        if key in keys:
            raise InvalidInput.field(f"metrics[{i}]", f"the value key {key!r} is used twice; set an alias", "body")
        keys.add(key)
        selections.append(Selection(metric, aggregation, key))
    return selections


def _group_by(raw: list[str]) -> list[str]:
    if len(raw) > MAX_GROUP_BY:
        raise InvalidInput.field("group_by", f"at most {MAX_GROUP_BY} dimensions", "body")
    for i, name in enumerate(raw):
        if name not in DIMENSIONS:
            allowed = ", ".join(DIMENSIONS)
            raise InvalidInput.field(f"group_by[{i}]", f"unknown dimension {name!r}; use {allowed}", "body")
        if name in raw[:i]:
            raise InvalidInput.field(f"group_by[{i}]", f"{name!r} is named twice", "body")
    return list(raw)


def _interval(raw: str | None, window: TimeWindow) -> tuple[str | None, int | None]:
    if raw is None:
        return None, None
    if raw == "auto":
        raw = auto_interval(window)
    seconds = INTERVALS.get(raw)
    if seconds is None:
        raise InvalidInput.field("interval", f"must be one of {', '.join(INTERVALS)} or auto", "body")
    return raw, seconds


def auto_interval(window: TimeWindow) -> str:
    """The interval whose bucket count is closest to AUTO_BUCKETS (on a log scale)."""
    span = (window.end - window.start).total_seconds()
    return min(INTERVALS, key=lambda name: abs(math.log(max(span / INTERVALS[name], 1e-9) / AUTO_BUCKETS)))


def _order(raw: str | None, selections: list[Selection]) -> tuple[str | None, bool]:
    if raw is None:
        return None, False
    descending = raw.startswith("-")
    key = raw[1:] if descending else raw
    if key not in {s.key for s in selections}:
        keys = ", ".join(s.key for s in selections)
        raise InvalidInput.field("order_by", f"must name a value of this query ({keys}), `-` first to descend", "body")
    return key, descending


def bucket_starts(
    window: TimeWindow, seconds: int, *, max_buckets: int = MAX_BUCKETS, field: str = "interval", source: str = "body"
) -> list[datetime]:
    """Every bucket start from the one holding `window.start` to the one before `window.end`."""
    origin = datetime.fromtimestamp(BUCKET_ORIGIN_EPOCH, tz=window.start.tzinfo)
    first = origin + timedelta(seconds=((window.start - origin).total_seconds() // seconds) * seconds)
    span = (window.end - first).total_seconds()
    count = int(span // seconds) + (1 if span % seconds else 0)
    if count > max_buckets:
        raise InvalidInput.field(field, f"gives more than {max_buckets} points over this range", source)
    return [first + timedelta(seconds=seconds * i) for i in range(count)]


# --------------------------------------------------------------------------- raw or rollup


def rollup_blocker(plan: Plan) -> tuple[str, str] | None:
    """Why the rollups cannot answer this query (field, reason), or None when they can."""
    for i, selection in enumerate(plan.selections):
        if not selection.metric.rollup_answers(selection.aggregation):
            return f"metrics[{i}]", f"{selection.metric.id} {selection.aggregation} is computed from raw spans only"
    for i, name in enumerate(plan.group_by):
        if name not in ROLLUP_DIMENSIONS:
            return f"group_by[{i}]", f"{name} is not a rollup dimension"
    if plan.filter_node is not None:
        for condition in _conditions(plan.filter_node):
            name, _ = split_field(condition.field)
            if name not in _ROLLUP_FILTER_FIELDS:
                return f"{condition.where}.field", f"{condition.field} is not a rollup dimension"
    return None


def rollup_for(plan: Plan, grain: str) -> Rollup:
    """The rollup of `grain` with the fewest dimensions that still holds every dimension the
    query groups or filters by (status and kind are always needed: metrics select by them), and
    every dimension a selected metric's condition reads."""
    needed = {"status", "kind", *plan.group_by}
    needed.update(d for s in plan.selections for d in s.metric.condition_dimensions)
    if plan.filter_node is not None:
        needed.update(split_field(c.field)[0] for c in _conditions(plan.filter_node))
    candidates = [r for r in ROLLUPS if r.grain == grain and needed <= set(r.dimensions)]
    return min(candidates, key=lambda r: len(r.dimensions))


def _conditions(node: Node) -> list[Condition]:
    if isinstance(node, Condition):
        return [node]
    assert isinstance(node, Group)
    return [c for item in node.items for c in _conditions(item)]


def choose_grain(plan: Plan, source: str) -> str | None:
    """The coarsest rollup grain the query reads (its `segments` use finer ones at the edges),
    or None for raw spans."""
    if source == "raw":
        return None
    blocker = rollup_blocker(plan)
    if blocker is not None:
        if source == "rollup":
            raise InvalidInput.field(
                "source", f"the rollups cannot answer this query: {blocker[0]}: {blocker[1]}", "body"
            )
        return None
    if source == "auto" and plan.window.end - plan.window.start <= RAW_MAX_RANGE:
        return None
    used = [grain for grain, _ in segments(plan.window, usable_grains(plan.interval_seconds)) if grain is not None]
    if not used:  # shorter than one rollup bucket
        if source == "rollup":
            raise InvalidInput.field("source", "the range holds no whole rollup bucket", "body")
        return None
    return max(used, key=GRAINS.__getitem__)


def usable_grains(interval_seconds: int | None) -> list[str]:
    """Grains whose buckets nest in the interval's buckets (all of them without an interval)."""
    return [g for g, seconds in GRAINS.items() if interval_seconds is None or interval_seconds % seconds == 0]


def segments(window: TimeWindow, grains: list[str]) -> list[tuple[str | None, TimeWindow]]:
    """`window` cut into parts read from the coarsest grain that holds whole buckets of them,
    finer grains at the edges, and raw spans (None) for what is left: at most 2 * len(grains) + 1."""
    if window.start >= window.end:
        return []
    if not grains:
        return [(None, window)]
    coarsest, finer = grains[-1], grains[:-1]
    inner = aligned(window, GRAINS[coarsest])
    if inner is None:
        return segments(window, finer)
    return [
        *segments(TimeWindow(start=window.start, end=inner.start), finer),
        (coarsest, inner),
        *segments(TimeWindow(start=inner.end, end=window.end), finer),
    ]


def aligned(window: TimeWindow, seconds: int) -> TimeWindow | None:
    """The largest part of `window` made of whole `seconds` buckets, or None if there is none."""
    origin = datetime.fromtimestamp(BUCKET_ORIGIN_EPOCH, tz=window.start.tzinfo)
    step = timedelta(seconds=seconds)
    start = origin + -((origin - window.start) // step) * step
    end = origin + ((window.end - origin) // step) * step
    return TimeWindow(start=start, end=end) if start < end else None
