"""The states of a metric query: decoded from rows, merged up the levels, read as values.

A state is one column of a metric's aggregate (`<metric>:n`, `:s`, `:c`, `:min`, `:max`, `:h` for
histogram bins, ...); a level maps a group key (and bucket start) to the states read or merged there.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

from observatory_api.metrics import histogram
from observatory_api.metrics.plan import Selection
from observatory_api.metrics.schemas import Value

States = dict[str, Any]
GroupKey = tuple[Any, ...]  # group key values, then the bucket start when bucketed
Level = dict[GroupKey, States]
# Exact percentiles: level ("totals", "series", "points") -> group key -> metric id -> fraction -> value.
Percentiles = dict[str, dict[GroupKey, dict[str, dict[float, float | None]]]]


@lru_cache(maxsize=256)
def decoder(names: tuple[str, ...]) -> Any:
    """A function from a row of state columns to States; histogram bins become one list."""
    plain: list[tuple[int, str]] = []
    bins: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        metric, _, state = name.partition(":")
        if state.startswith("h") and state[1:].isdigit():
            bins.setdefault(metric, []).append(i)
        else:
            plain.append((i, name))
    # state_columns emits each histogram's bins in order, side by side.
    spans = {f"{metric}:h": (at[0], at[-1] + 1) for metric, at in bins.items()}

    def decode(values: Any) -> States:
        states: States = {name: values[i] for i, name in plain}
        for name, (first, end) in spans.items():
            states[name] = list(values[first:end])  # summed with coalesce(..., 0): no NULL bins
        return states

    return decode


def merge_levels(a: Level, b: Level) -> Level:
    merged = dict(a)
    for key, states in b.items():
        merged[key] = merge_all([merged[key], states]) if key in merged else states
    return merged


def merge_up(level: Level, nkeys: int) -> Level:
    """`level` merged up to its first `nkeys` key values (a series' totals from its points, ...)."""
    members: dict[GroupKey, list[States]] = defaultdict(list)
    for key, states in level.items():
        members[key[:nkeys]].append(states)
    return {short: merge_all(group) for short, group in members.items()}


def merge_all(group: list[States]) -> States:
    """The states of `group` merged in one pass per state: a day by minute merges 1,440 states,
    and summing each histogram bin across them (zip, sum) beats merging them two at a time."""
    if len(group) == 1:
        return group[0]
    merged: States = {}
    for name in {name for states in group for name in states}:
        values = [v for states in group if (v := states.get(name)) is not None]
        if not values:
            merged[name] = None
            continue
        state = name.partition(":")[2]
        if state == "min":
            merged[name] = min(values)
        elif state == "max":
            merged[name] = max(values)
        elif state == "h":
            merged[name] = [sum(column) for column in zip(*values, strict=True)]
        else:
            merged[name] = sum(values)
    return merged


def exact_at(exact: Percentiles, level: str, key: GroupKey) -> dict[str, dict[float, float | None]]:
    return exact.get(level, {}).get(key, {})


def values_of(
    selections: list[Selection], states: States, exact: dict[str, dict[float, float | None]]
) -> dict[str, Value]:
    return {s.key: value_of(s, states, exact) for s in selections}


def value_of(selection: Selection, states: States, exact: dict[str, dict[float, float | None]]) -> Value:
    metric, aggregation, name = selection.metric, selection.aggregation, selection.metric.id
    # asyncpg returns numeric sums as Decimal: int() and float() convert them.
    if metric.kind == "count":
        return int(states.get(f"{name}:n") or 0)
    if metric.kind == "distinct":
        return int(states.get(f"{name}:d") or 0)
    if metric.kind == "ratio":
        denominator = states.get(f"{name}:den") or 0
        return float(states.get(f"{name}:num") or 0) / float(denominator) if denominator else None
    if selection.percentile is not None:
        if f"{name}:h" in states:
            return histogram.percentile(
                states[f"{name}:h"],
                selection.percentile,
                minimum=_float(states.get(f"{name}:min")),
                maximum=_float(states.get(f"{name}:max")),
            )
        return exact.get(name, {}).get(selection.percentile)
    count = states.get(f"{name}:c")
    total = states.get(f"{name}:s")
    if aggregation == "count":
        return int(count or 0)
    if aggregation == "sum":
        return int(total or 0) if metric.integer else float(total or 0.0)
    if aggregation == "avg":
        return float(total) / float(count) if count and total is not None else None
    extreme = states.get(f"{name}:{aggregation}")
    if extreme is None:
        return None
    return int(extreme) if metric.integer else float(extreme)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
