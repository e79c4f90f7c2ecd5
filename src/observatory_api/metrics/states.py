"""The states of a metric query: decoded from rows, merged up the levels, read as values.

A state is one column of a metric's aggregate (`<metric>:n`, `:s`, `:c`, `:min`, `:max`, `:h` for
histogram bins, ...); a level maps a group key (and bucket start) to the states read or merged there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec

from observatory_api.metrics import histogram
from observatory_api.metrics.plan import Selection
from observatory_api.metrics.schemas import Value

States = dict[str, Any]
GroupKey = tuple[Any, ...]  # group key values, then the bucket start when bucketed
Level = dict[GroupKey, States]
# Exact percentiles: level ("totals", "series", "points") -> group key -> metric id -> fraction -> value.
Percentiles = dict[str, dict[GroupKey, dict[str, dict[float, float | None]]]]


_BINS = msgspec.json.Decoder(list[int]).decode  # PostgreSQL's packed bins, sent as JSON text


@lru_cache(maxsize=256)
def decoder(names: tuple[str, ...]) -> Any:
    """A function from a row of state columns to States; histogram bins become one list (on
    PostgreSQL they come as one already: `<metric>:h`, see `sql._bin_sums`)."""
    plain: list[tuple[int, str]] = []
    bins: dict[str, list[int]] = {}
    raw_values: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        metric, _, state = name.partition(":")
        if state.startswith("h") and state[1:].isdigit():
            bins.setdefault(metric, []).append(i)
        elif state == "v":  # a raw edge's values of a histogram metric (`raw_columns.with_edge_values`)
            raw_values.append((i, f"{metric}:h"))
        else:
            plain.append((i, name))
    # state_columns emits each histogram's bins in order, side by side.
    spans = {f"{metric}:h": (at[0], at[-1] + 1) for metric, at in bins.items()}

    if not spans and not raw_values:  # every column a state of its own (PostgreSQL's packed bins, ...)
        names_in_order = tuple(name for _, name in plain)
        packed = tuple(name for name in names_in_order if name.endswith(":h"))

        def decode_plain(values: Any) -> States:
            states = dict(zip(names_in_order, values, strict=False))
            for name in packed:  # the bins as JSON text (`sql._bin_sums`)
                text = states[name]
                if isinstance(text, str):
                    states[name] = _BINS(text)
            return states

        return decode_plain

    def decode(values: Any) -> States:
        states: States = {name: values[i] for i, name in plain}
        for name, (first, end) in spans.items():
            states[name] = list(values[first:end])  # summed with coalesce(..., 0): no NULL bins
        for i, name in raw_values:
            if values[i] is not None:  # NULL: no values in the group, no histogram (as it had)
                states[name] = histogram.histogram_of([float(value) for value in values[i]])
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
    return point_values(tuple(selections))(states, exact)


Exact = dict[str, dict[float, float | None]]  # one level and key's exact percentiles
Reader = Callable[[States, Exact], Value]
ValuesOf = Callable[[States, Exact], dict[str, Value]]


@lru_cache(maxsize=256)
def readers(selections: tuple[Selection, ...]) -> list[tuple[str, Reader]]:
    """Each selection's value key and a function reading its value from States (and the exact
    percentiles): the state names are built once per query shape, not once per point (a day by
    minute reads 1,440 points)."""
    return [(s.key, _reader(s)) for s in selections]


@lru_cache(maxsize=256)
def point_values(selections: tuple[Selection, ...]) -> ValuesOf:
    """A function from States (and exact percentiles) to every selection's value, in selection
    order, as `readers` would read them one by one: the percentiles of one histogram metric
    (p50, p95, p99) from one cumulative pass over its bins (`histogram.percentiles`)."""
    keys = tuple(s.key for s in selections)
    plain: list[tuple[int, Reader]] = []
    shared: dict[str, list[int]] = {}  # a histogram metric -> its percentile selections' positions
    for i, (selection, (_, read)) in enumerate(zip(selections, readers(selections), strict=True)):
        if selection.percentile is not None:
            shared.setdefault(selection.metric.id, []).append(i)
        else:
            plain.append((i, read))
    groups = [
        (name, f"{name}:h", f"{name}:min", f"{name}:max", tuple(at), tuple(selections[i].percentile or 0.0 for i in at))
        for name, at in shared.items()
    ]
    width = len(selections)
    if all(len(at) == 1 for *_, at, _ in groups):  # nothing to share: each selection's reader
        steps = readers(selections)

        def each(states: States, exact: Exact) -> dict[str, Value]:
            found = {}
            for key, read in steps:
                found[key] = read(states, exact)
            return found

        return each

    def values(states: States, exact: Exact) -> dict[str, Value]:
        found: list[Value] = [None] * width
        for i, read in plain:
            found[i] = read(states, exact)
        for name, bins, low, high, at, fractions in groups:
            counts = states.get(bins)
            if counts is not None:
                got = histogram.percentiles(counts, fractions, _float(states.get(low)), _float(states.get(high)))
            else:
                known = exact.get(name, {})
                got = [known.get(fraction) for fraction in fractions]
            for i, value in zip(at, got, strict=True):
                found[i] = value
        return dict(zip(keys, found, strict=True))

    return values


def _reader(selection: Selection) -> Reader:
    metric, aggregation, name = selection.metric, selection.aggregation, selection.metric.id
    # asyncpg returns numeric sums as Decimal: int() and float() convert them.
    if metric.kind in ("count", "distinct"):
        state = f"{name}:n" if metric.kind == "count" else f"{name}:d"
        return lambda states, exact: int(states.get(state) or 0)
    if metric.kind == "ratio":
        num, den = f"{name}:num", f"{name}:den"

        def ratio(states: States, exact: Exact) -> Value:
            denominator = states.get(den) or 0
            return float(states.get(num) or 0) / float(denominator) if denominator else None

        return ratio
    fraction = selection.percentile
    if fraction is not None:
        bins, low, high = f"{name}:h", f"{name}:min", f"{name}:max"

        fractions = (fraction,)

        def percentile(states: States, exact: Exact) -> Value:
            counts = states.get(bins)
            if counts is not None:
                return histogram.percentiles(counts, fractions, _float(states.get(low)), _float(states.get(high)))[0]
            return exact.get(name, {}).get(fraction)

        return percentile
    count_state, sum_state = f"{name}:c", f"{name}:s"
    if aggregation == "count":
        return lambda states, exact: int(states.get(count_state) or 0)
    if aggregation == "sum":
        if metric.integer:
            return lambda states, exact: int(states.get(sum_state) or 0)
        return lambda states, exact: float(states.get(sum_state) or 0.0)
    if aggregation == "avg":

        def average(states: States, exact: Exact) -> Value:
            count, total = states.get(count_state), states.get(sum_state)
            return float(total) / float(count) if count and total is not None else None

        return average
    extreme_state = f"{name}:{aggregation}"

    def extreme(states: States, exact: Exact) -> Value:
        value = states.get(extreme_state)
        if value is None:
            return None
        return int(value) if metric.integer else float(value)

    return extreme


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
