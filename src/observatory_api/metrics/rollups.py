"""Keeping the rollup tables up to date: spans newly stored are added into their minute and hour rows.

The writer calls `add_to_rollups` in the transaction that stores the spans, with only the spans
that transaction newly inserted (a retried batch adds nothing). Rows are added, never recomputed:
counts and sums add up, min and max widen, histogram bins add up; the upsert does the addition
inside the database, so concurrent writers do not lose each other's counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, case, func, literal_column
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.dialect import upsert_via_staging
from observatory_api.metrics.histogram import bin_of
from observatory_api.metrics.rollup_tables import HISTOGRAMS, MEASURES, ROLLUPS, Rollup, hist_columns

if TYPE_CHECKING:  # storage imports this module: no import cycle at run time
    from observatory_api.storage.records import SpanRecord

BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday, as in db.dialect.time_bucket


def bucket_start(moment: datetime, seconds: int) -> datetime:
    step = timedelta(seconds=seconds)
    return BUCKET_ORIGIN + ((moment - BUCKET_ORIGIN) // step) * step


def tokens_per_second(kind: str, status: str, output_tokens: int | None, duration_ms: float) -> float | None:
    """Generation speed of a successful LLM call: output tokens over the call's duration.

    The raw query computes the same expression in SQL (`metrics.catalogue`).
    """
    if kind != "llm" or status == "error" or not output_tokens or output_tokens <= 0 or duration_ms <= 0:
        return None
    return float(output_tokens) * 1000.0 / duration_ms


def measure_values(record: SpanRecord) -> dict[str, float | int | None]:
    values: dict[str, float | int | None] = {
        name: getattr(record, name) for name in MEASURES if name != "output_tokens_per_second"
    }
    values["output_tokens_per_second"] = tokens_per_second(
        record.kind, record.status, record.output_tokens, record.duration_ms
    )
    return values


def dims_key(values: Sequence[str | None]) -> str:
    joined = "\x1e".join("\x00" if value is None else value for value in values)
    return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()


def rollup_rows(records: Iterable[SpanRecord], rollup: Rollup) -> list[list[Any]]:
    """One row per (bucket, dimensions) of `records` for `rollup`, in its table's column order:
    the deltas to add, ordered by key."""
    layout = _layout(rollup)
    dimension_columns = rollup.dimension_columns
    rows: dict[tuple[datetime, str], list[Any]] = {}
    for record in records:
        dims = [getattr(record, column) for column in dimension_columns]
        key = (bucket_start(record.start_time, rollup.seconds), dims_key(dims))
        row = rows.get(key)
        if row is None:
            row = rows[key] = [key[0], key[1], *dims, *layout.empty]
        row[layout.span_count] += 1
        for measure, value in measure_values(record).items():
            if value is None:
                continue
            at = layout.measure_at[measure]
            row[at] += 1
            row[at + 1] += value
            if row[at + 2] is None or value < row[at + 2]:
                row[at + 2] = value
            if row[at + 3] is None or value > row[at + 3]:
                row[at + 3] = value
            first_bin = layout.histogram_at.get(measure)
            if first_bin is not None:
                column = first_bin + bin_of(float(value))
                row[column] = (row[column] or 0) + 1
    return [rows[key] for key in sorted(rows)]


@dataclass(frozen=True, slots=True)
class _Layout:
    span_count: int
    measure_at: dict[str, int]
    histogram_at: dict[str, int]
    empty: list[Any]  # the measure columns of a new row, from span_count on


@cache
def _layout(rollup: Rollup) -> _Layout:
    columns = [column.name for column in rollup.table.columns]
    span_count = columns.index("span_count")
    measure_at = {m: columns.index(f"{m}_count") for m in MEASURES}
    empty: list[Any] = [None] * (len(columns) - span_count)
    empty[0] = 0
    for measure, integer in MEASURES.items():
        empty[measure_at[measure] - span_count] = 0
        empty[measure_at[measure] - span_count + 1] = 0 if integer else 0.0
    histogram_at = {m: columns.index(hist_columns(m)[0]) for m in HISTOGRAMS}
    return _Layout(span_count, measure_at, histogram_at, empty)


_HISTOGRAM_COLUMNS = {m: hist_columns(m) for m in HISTOGRAMS}


def additive_updates(table: Table, new: Any) -> dict[str, Any]:
    """The SET clause that adds the delta row `new` (the upsert's `excluded`) to the stored row."""
    updates: dict[str, Any] = {"span_count": table.c.span_count + new.span_count}
    for measure in MEASURES:
        for suffix in ("count", "sum"):
            name = f"{measure}_{suffix}"
            updates[name] = table.c[name] + new[name]
        low, high = table.c[f"{measure}_min"], table.c[f"{measure}_max"]
        new_low, new_high = new[f"{measure}_min"], new[f"{measure}_max"]
        updates[low.name] = case(
            (low.is_(None), new_low), (new_low.is_(None), low), (new_low < low, new_low), else_=low
        )
        updates[high.name] = case(
            (high.is_(None), new_high), (new_high.is_(None), high), (new_high > high, new_high), else_=high
        )
    zero = literal_column("0")
    for columns in _HISTOGRAM_COLUMNS.values():
        for name in columns:
            updates[name] = case(
                (new[name].is_(None), table.c[name]), else_=func.coalesce(table.c[name], zero) + new[name]
            )
    return updates


async def add_to_rollups(conn: AsyncConnection, records: Sequence[SpanRecord]) -> None:
    """Add `records` (spans this transaction newly stored) to every rollup table."""
    if not records:
        return
    for rollup in ROLLUPS:
        table = rollup.table
        await upsert_via_staging(
            conn,
            table,
            rollup_rows(records, rollup),
            key=("bucket", "dims_key"),
            updates=lambda new, t=table: additive_updates(t, new),
        )
