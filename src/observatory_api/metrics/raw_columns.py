"""Columns added to a raw states statement on plain PostgreSQL, so that what needed a statement
of its own is read in the same one: a histogram metric's values on a rollup query's raw edges (one
round trip less), and the exact percentiles of a raw query's totals (one scan of the spans less:
bench/RESULTS.md, "Histogram edge values and percentiles in the states statement").

Only where the answer stays the same to the last bit: a float sum depends on the order in which
the rows reach it. percentile_cont cannot be hashed, so a grouped statement would sort its groups
(another order); on TimescaleDB neither aggregate can be partial, so a statement over chunks would
no longer sum chunk by chunk. There, and on SQLite (no arrays, no percentile_cont), the statements
of their own stay (`sql.edge_values`, `db.metric_sql.grouped_percentiles`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, func, type_coerce
from sqlalchemy.sql.sqltypes import NullType

from observatory_api.metrics.catalogue import Metric
from observatory_api.metrics.plan import Plan, Selection
from observatory_api.metrics.rollup_tables import HISTOGRAMS
from observatory_api.metrics.sql import Source
from observatory_api.metrics.states import Exact, GroupKey, Level

# Exact percentiles by metric id: the metric and its fractions.
Fractions = dict[str, tuple[Metric, list[float]]]


def with_edge_values(statement: Select[Any], source: Source, selections: list[Selection]) -> Select[Any]:
    """`statement` with the values of each histogram metric of `selections` as one array,
    `<metric>:v`, which the decoder bins as the writer does (`states.decoder`)."""
    columns = []
    for selection in selections:
        metric, t = selection.metric, source.table
        assert metric.value is not None  # histogram metrics are measures: a condition and a value
        assert metric.condition is not None
        value = metric.value(t)
        values = func.array_agg(value).filter(and_(metric.condition(t), value.is_not(None)))
        # NullType: no result processor (ARRAY's walks each list in Python).
        columns.append(type_coerce(values, NullType()).label(f"{metric.id}:v"))
    return statement.add_columns(*columns)


def with_exact(statement: Select[Any], source: Source, fractions: Fractions) -> Select[Any]:
    """`statement` with the exact percentiles of its own groups, `<metric>:x<i>` for the `i`th
    fraction, as `grouped_percentiles` computes them (percentile_cont skips the NULLs its WHERE
    leaves out; no values: NULL, which reads as the group missing there did)."""
    columns = []
    for metric_id, (metric, wanted) in fractions.items():
        assert metric.condition is not None  # percentiles are of measures: a condition and a value
        assert metric.value is not None
        value = case((metric.condition(source.table), metric.value(source.table)))
        columns += [
            func.percentile_cont(f).within_group(value.asc()).label(f"{metric_id}:x{i}") for i, f in enumerate(wanted)
        ]
    return statement.add_columns(*columns)


def fractions_of(plan: Plan) -> Fractions:
    """The exact percentiles a raw query asks for: each metric's fractions, in selection order."""
    found: Fractions = {}
    for selection in plan.selections:
        if selection.percentile is not None:
            found.setdefault(selection.metric.id, (selection.metric, []))[1].append(selection.percentile)
    return found


def taken_exact(level: Level, fractions: Fractions) -> dict[GroupKey, Exact]:
    """The exact percentiles `with_exact` read into `level`'s states, taken out of them."""
    return {
        group: {
            metric_id: {
                f: None if (v := states.pop(f"{metric_id}:x{i}")) is None else float(v) for i, f in enumerate(wanted)
            }
            for metric_id, (_, wanted) in fractions.items()
        }
        for group, states in level.items()
    }


def histogram_selections(plan: Plan) -> list[Selection]:
    chosen: dict[str, Selection] = {}
    for selection in plan.selections:
        if selection.percentile is not None and selection.metric.measure in HISTOGRAMS:
            chosen.setdefault(selection.metric.id, selection)
    return list(chosen.values())
