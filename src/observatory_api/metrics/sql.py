"""Statements of the metric engine, from whitelisted pieces: catalogue entries, known columns,
compiled span filters and bound values.

A `Source` is what a statement reads: raw spans (one row per span) or a rollup table (one row per
bucket and dimension combination, weighted by its span count; on TimescaleDB the continuous
aggregate with the same rows). Both give the same *states* (counts, sums, min, max, histogram
bins) under the same names, so one merge code serves both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    nulls_last,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors
from sqlalchemy.sql.sqltypes import NullType

from observatory_api.core.query import TimeWindow
from observatory_api.db import tables
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.filters import compile_span_filter
from observatory_api.db.metric_sql import bin_sum, json_array_elements, time_bucket
from observatory_api.metrics.catalogue import DIMENSIONS, model_call
from observatory_api.metrics.continuous_aggregates import aggregate_for
from observatory_api.metrics.plan import Plan, Selection, rollup_for
from observatory_api.metrics.rollup_tables import GRAINS, HISTOGRAMS, hist_columns

_s = tables.spans
T = TypeVar("T")


@dataclass(slots=True)
class Source:
    table: Table
    from_obj: Any
    time_column: ColumnElement[Any]
    keys: list[Any]  # labelled g0, g1, ... in group_by order
    where: ColumnElement[bool]
    rollup: bool
    capabilities: DatabaseCapabilities
    grain_seconds: int | None = None  # a rollup's bucket width: its buckets need no re-bucketing

    def weight(self) -> ColumnElement[Any]:
        return self.table.c.span_count if self.rollup else literal(1)

    def bucket(self, seconds: int) -> ColumnElement[Any]:
        """The `seconds`-wide bucket of each row, labelled `bucket`."""
        return time_bucket(seconds, self.time_column, timescaledb=self.capabilities.timescaledb).label("bucket")


# The window is bound at execution (`window_params`), not built in: one statement object then
# serves every window, and SQLAlchemy computes its cache key once (~13 ms for a statement with
# histogram bins) instead of on every execution.
WINDOW_START, WINDOW_END = "window_start", "window_end"
_MEMO_ENTRIES = 512
_memo: OrderedDict[Hashable, Any] = OrderedDict()


def window_params(*windows: TimeWindow) -> dict[str, datetime]:
    """The bound values of a statement over `windows` (built with as many, see `_in_window`)."""
    if len(windows) == 1:
        return {WINDOW_START: windows[0].start, WINDOW_END: windows[0].end}
    params = {}
    for i, window in enumerate(windows):
        params[f"{WINDOW_START}_{i}"], params[f"{WINDOW_END}_{i}"] = window.start, window.end
    return params


def _in_window(column: ColumnElement[Any], windows: int = 1) -> list[ColumnElement[bool]]:
    if windows == 1:
        return [column >= bindparam(WINDOW_START), column < bindparam(WINDOW_END)]
    # Both raw edges of a rollup query in one statement: one round trip instead of two.
    return [
        or_(
            *(
                and_(column >= bindparam(f"{WINDOW_START}_{i}"), column < bindparam(f"{WINDOW_END}_{i}"))
                for i in range(windows)
            )
        )
    ]


def memoized(key: Hashable, build: Callable[[], T]) -> T:
    """The statement `build` makes for `key` (everything that shapes it), built once: building
    and hashing a statement of ~170 columns costs more than running it on the rollups."""
    found: T | None = _memo.get(key)
    if found is None:
        found = _memo[key] = build()
        if len(_memo) > _MEMO_ENTRIES:
            _memo.popitem(last=False)
    else:
        _memo.move_to_end(key)
    return found


def raw_source(
    plan: Plan, capabilities: DatabaseCapabilities, *, groups: list[tuple[Any, ...]] | None = None, windows: int = 1
) -> Source:
    from_obj: Any = _s
    tag: Any = None  # the unnested tags, when grouped by tag
    if "tag" in plan.group_by:
        tag = json_array_elements(capabilities.dialect_name, _s.c.tags, "tag")
        from_obj = _s.outerjoin(tag, true())
    keys = [
        (tag.c.value if name == "tag" else _s.c[DIMENSIONS[name]]).label(f"g{i}")
        for i, name in enumerate(plan.group_by)
    ]
    where = and_(*_in_window(_s.c.start_time, windows), *_scope(plan, _s))
    if plan.filter_node is not None:
        where = and_(where, compile_span_filter(plan.filter_node, allow_content=plan.allow_content))
    if groups is not None:
        where = and_(where, groups_condition(keys, groups))
    return Source(_s, from_obj, _s.c.start_time, keys, where, rollup=False, capabilities=capabilities)


def rollup_source(plan: Plan, grain: str, capabilities: DatabaseCapabilities, table: Table | None = None) -> Source:
    """The rollup of `grain` that answers `plan`, or its continuous aggregate when the database
    has them (TimescaleDB, see `metrics.continuous_aggregates`); `table`: the aggregate's
    materialised hypertable instead (`metrics.materialized`)."""
    if table is None:
        table = rollup_for(plan, grain).table
        if capabilities.continuous_aggregates:
            table = aggregate_for(table)
    keys = [table.c[DIMENSIONS[name]].label(f"g{i}") for i, name in enumerate(plan.group_by)]
    where = and_(*_in_window(table.c.bucket), *_scope(plan, table))
    if plan.filter_node is not None:
        where = and_(where, rebind(compile_span_filter(plan.filter_node, allow_content=plan.allow_content), table))
    return Source(
        table, table, table.c.bucket, keys, where, rollup=True, capabilities=capabilities, grain_seconds=GRAINS[grain]
    )


def _scoped(plan: Plan) -> bool:
    return all(s.metric.model_calls_only for s in plan.selections)


def _scope(plan: Plan, t: Any) -> list[ColumnElement[bool]]:
    """Model calls only, when every selected metric is about model calls: fewer rows to read,
    and no group made only of other spans (all zeros)."""
    return [model_call(t)] if _scoped(plan) else []


def rebind(expression: ColumnElement[Any], table: Table) -> ColumnElement[Any]:
    """`expression` over spans, with every spans column replaced by `table`'s column of that name."""

    def replace(element: Any, **_: Any) -> Any:
        if getattr(element, "table", None) is _s and element.name in table.c:
            return table.c[element.name]
        return None

    rebound: ColumnElement[Any] = visitors.replacement_traverse(expression, {}, replace)
    return rebound


def groups_condition(keys: list[Any], groups: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    """Rows of one of `groups` (tuples of key values, None for NULL)."""
    if not groups:
        return false()
    return or_(
        *(
            and_(*(key.element.is_(None) if v is None else key.element == v for key, v in zip(keys, g, strict=True)))
            for g in groups
        )
    )


# --------------------------------------------------------------------------- states


def _condition_left(plan: Plan, condition: Any) -> Any:
    """`condition`, or None when the scope (WHERE) already ensures it."""
    return None if condition is model_call and _scoped(plan) else condition


def _when(plan: Plan, condition: Any, t: Any, value: Any, default: Any = None) -> Any:
    """`value` where `condition` holds; just `value` when the scope (WHERE) already ensures it."""
    left = _condition_left(plan, condition)
    return value if left is None else case((left(t), value), else_=default)


def _int_sum(value: Any) -> Any:
    # PostgreSQL sums BIGINT as NUMERIC (Decimal in Python): cast back, it is much faster to read.
    return cast(func.sum(value), BigInteger)


def state_columns(plan: Plan, source: Source) -> list[Any]:
    """Every state the selections need, labelled `<metric>:<state>`, over `source`."""
    columns: dict[str, Any] = {}
    t, weight = source.table, source.weight()
    for selection in plan.selections:
        metric = selection.metric
        name = metric.id
        if metric.kind == "count":
            columns[f"{name}:n"] = _int_sum(_when(plan, metric.condition, t, weight, 0))
        elif metric.kind == "ratio":
            columns[f"{name}:num"] = _int_sum(_when(plan, metric.condition, t, weight, 0))
            columns[f"{name}:den"] = _int_sum(_when(plan, metric.denominator, t, weight, 0))
        elif metric.kind == "distinct":
            assert metric.column is not None  # every distinct count names its column
            columns[f"{name}:d"] = func.count(func.distinct(t.c[metric.column]))
        else:
            columns.update(_measure_states(selection, source, plan))
    return [expression.label(label) for label, expression in columns.items()]


def _measure_states(selection: Selection, source: Source, plan: Plan) -> dict[str, Any]:
    metric, aggregation, t = selection.metric, selection.aggregation, source.table
    name, measure = metric.id, metric.measure
    states: dict[str, Any] = {}
    percentile = selection.percentile is not None
    if source.rollup:
        if aggregation in ("count", "avg"):
            states[f"{name}:c"] = _int_sum(_when(plan, metric.condition, t, t.c[f"{measure}_count"], 0))
        if aggregation in ("sum", "avg"):
            total = _when(plan, metric.condition, t, t.c[f"{measure}_sum"])
            states[f"{name}:s"] = _int_sum(total) if metric.integer else func.sum(total)
        if aggregation == "min" or percentile:
            states[f"{name}:min"] = func.min(_when(plan, metric.condition, t, t.c[f"{measure}_min"]))
        if aggregation == "max" or percentile:
            states[f"{name}:max"] = func.max(_when(plan, metric.condition, t, t.c[f"{measure}_max"]))
        if percentile:
            packed = source.capabilities.dialect_name == "postgresql"
            condition = _condition_left(plan, metric.condition)
            states.update(_bin_sums(name, measure, t, condition, packed=packed))
        return states
    assert metric.value is not None  # every measure has one
    value = _when(plan, metric.condition, t, metric.value(t))
    # A percentile counts its values too: exact percentiles are read by their own statements,
    # and without a state a percentile-only query without groups or buckets was `SELECT FROM`.
    if aggregation in ("count", "avg") or percentile:
        states[f"{name}:c"] = func.count(value)
    if aggregation in ("sum", "avg"):
        states[f"{name}:s"] = func.sum(value)
    if aggregation == "min":
        states[f"{name}:min"] = func.min(value)
    if aggregation == "max":
        states[f"{name}:max"] = func.max(value)
    # Exact percentiles are separate statements (see `grouped_percentiles`); on raw edges of a
    # rollup query the histogram is filled from the values (see `edge_values`).
    if percentile and metric.measure in HISTOGRAMS:
        states[f"{name}:min"] = func.min(value)
        states[f"{name}:max"] = func.max(value)
    return states


@cache
def _bin_sums(name: str, measure: str, table: Table, condition: Any, *, packed: bool = False) -> dict[str, Any]:
    """The summed histogram bins of `measure` (0 when empty), where `condition` holds (None: all
    rows). Built once per table and metric: ~160 expressions cost ~10 ms to build per query.

    `packed` (PostgreSQL): one column `<metric>:h` (a `bigint[]` as JSON text, see below) instead
    of a column per bin, where 160 columns a row cost ~10 us of Python each row (a day by minute:
    1,440 rows). Summed there by `metric_bin_sum` (`db.metric_sql.bin_sum`):
    a bigint sum that skips NULL bins without a call, where `sum` adds a NUMERIC or a call per bin."""
    sums = {}
    for i, column in enumerate(hist_columns(measure)):
        value = table.c[column] if condition is None else case((condition(table), table.c[column]))
        total = bin_sum(value) if packed else _int_sum(value)
        sums[f"{name}:h{i}"] = func.coalesce(total, literal_column("0"))
    if packed:
        # As JSON text, decoded by `states.decoder` with msgspec: asyncpg's decode of a bigint[160]
        # costs ~9 us a row, the text and msgspec ~5 (bench/RESULTS.md, "24 hours by minute: the
        # Python half"). NullType: no result processor.
        array: Any = postgresql.array(list(sums.values()), type_=BigInteger)
        return {f"{name}:h": type_coerce(cast(func.array_to_json(array), Text), NullType())}
    return sums


def _bucket(plan: Plan, source: Source) -> Any:
    # A rollup read at its own grain is already bucketed: grouping by the column itself spares a
    # date_bin per row and lets the database read the rows in key order.
    if source.grain_seconds == plan.interval_seconds:
        return source.time_column.label("bucket")
    assert plan.interval_seconds is not None  # only bucketed plans are bucketed
    return source.bucket(plan.interval_seconds)


def states_statement(plan: Plan, source: Source, *, with_bucket: bool, with_keys: bool = True) -> Select[Any]:
    group = list(source.keys) if with_keys else []
    if with_bucket:
        group.append(_bucket(plan, source))
    statement = select(*group, *state_columns(plan, source)).select_from(source.from_obj).where(source.where)
    return statement.group_by(*group) if group else statement


def value_group(plan: Plan, source: Source, *, with_bucket: bool) -> list[Any]:
    """What a statement over single values (not states) groups by: the source's keys, then the
    time bucket of each value when bucketed."""
    group: list[Any] = list(source.keys)
    if with_bucket:
        assert plan.interval_seconds is not None  # only bucketed plans are bucketed
        group.append(source.bucket(plan.interval_seconds))
    return group


def edge_values(plan: Plan, source: Source, selection: Selection, *, with_bucket: bool) -> Select[Any]:
    """Raw values of a histogram metric, for the raw edges of a rollup query."""
    metric = selection.metric
    group = value_group(plan, source, with_bucket=with_bucket)
    # Histogram metrics are measures: a condition and a value.
    assert metric.value is not None
    assert metric.condition is not None
    value = metric.value(source.table)
    condition = and_(source.where, metric.condition(source.table), value.is_not(None))
    return select(*group, value.label("v")).select_from(source.from_obj).where(condition)


def top_groups_statement(plan: Plan, source: Source) -> Select[Any]:
    """The group keys of the top `limit` groups by the order value, over the whole range."""
    selection = plan.order_selection
    assert selection is not None
    metric, t = selection.metric, source.table
    # Count, ratio and measure metrics have a condition; ratios a denominator, measures a value.
    if metric.kind == "count":
        order: Any = func.count() if metric.condition is None else func.sum(case((metric.condition(t), 1), else_=0))
    elif metric.kind == "ratio":
        assert metric.condition is not None
        assert metric.denominator is not None
        numerator = func.sum(case((metric.condition(t), 1.0), else_=0.0))
        order = numerator / func.nullif(func.sum(case((metric.denominator(t), 1), else_=0)), 0)
    elif metric.kind == "distinct":
        assert metric.column is not None
        order = func.count(func.distinct(t.c[metric.column]))
    else:
        assert metric.condition is not None
        assert metric.value is not None
        value = case((metric.condition(t), cast(metric.value(t), Double)))
        aggregates: dict[str, Callable[[Any], Any]] = {
            "count": func.count,
            "sum": func.sum,
            "avg": func.avg,
            "min": func.min,
            "max": func.max,
        }
        order = aggregates[selection.aggregation](value)
    direction = nulls_last(order.desc() if plan.descending else order.asc())
    return (
        select(*source.keys)
        .select_from(source.from_obj)
        .where(source.where)
        .group_by(*source.keys)
        .order_by(direction, *(nulls_last(k.element.asc()) for k in source.keys))
        .limit(plan.limit)
    )
