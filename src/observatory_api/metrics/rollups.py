"""Keeping the rollup tables up to date: spans newly stored are added into their minute and hour rows.

The writer calls `add_to_rollups` in the transaction that stores the spans, with only the spans
that transaction newly inserted (a retried batch adds nothing). Rows are added, never recomputed:
counts and sums add up, min and max widen, histogram bins add up; the upsert does the addition
inside the database, so concurrent writers do not lose each other's counts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import ColumnElement, Table, case, func, literal_column, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.bulk_insert import Rebucketed, upsert_via_staging
from observatory_api.db.tables import spans
from observatory_api.metrics.histogram import bin_of
from observatory_api.metrics.rollup_tables import (
    HISTOGRAMS,
    MEASURES,
    ROLLUP_DIMENSIONS,
    ROLLUPS,
    Rollup,
    hist_columns,
)

if TYPE_CHECKING:  # storage imports this module: no import cycle at run time
    from observatory_api.core.records import SpanRecord

BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday, as in db.metric_sql.time_bucket


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


def dims_key(values: Sequence[str | None]) -> str:
    return _dims_key(tuple(values))


@lru_cache(maxsize=8192)  # few distinct combinations recur in every batch
def _dims_key(values: tuple[str | None, ...]) -> str:
    joined = "\x1e".join("\x00" if value is None else value for value in values)
    return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()


def rollup_rows(records: Iterable[SpanRecord], rollup: Rollup) -> list[list[Any]]:
    """One row per (bucket, dimensions) of `records` for `rollup`, in its table's column order:
    the deltas to add, ordered by key."""
    return _aggregate([contribution(msgspec.structs.astuple(record)) for record in records], rollup)


def all_rollup_rows(contributions: Sequence[Contribution]) -> list[tuple[Rollup, list[list[Any]]]]:
    """`rollup_rows` for every rollup table, from the spans' contributions (migration 0008)."""
    return [(rollup, _aggregate(contributions, rollup)) for rollup in ROLLUPS]


# A span's part in every rollup: whole seconds since BUCKET_ORIGIN, the values of every
# dimension column, and (measure index, value, histogram bin or -1) per non-null measure.
Contribution = tuple[int, tuple[str | None, ...], list[tuple[int, float | int, int]]]
_MEASURE_NAMES = tuple(MEASURES)
_MEASURE_INDEX = {name: i for i, name in enumerate(_MEASURE_NAMES)}
_DIMENSION_COLUMNS = tuple(ROLLUP_DIMENSIONS.values())
# Positions in a `spans` row (a SpanRecord as a tuple): indexing beats getattr per field.
_AT = {column.name: i for i, column in enumerate(spans.columns)}
_DIMENSIONS_AT = tuple(_AT[column] for column in _DIMENSION_COLUMNS)
_MEASURES_AT = tuple((index, _AT[name], name in HISTOGRAMS) for index, name in enumerate(_MEASURE_NAMES) if name in _AT)
_TOKENS_PER_SECOND = _MEASURE_INDEX["output_tokens_per_second"]
_KIND, _STATUS, _OUTPUT, _DURATION = (_AT[c] for c in ("kind", "status", "output_tokens", "duration_ms"))
_START = _AT["start_time"]


def contribution(row: Sequence[Any]) -> Contribution:
    """What the span `row` (the columns of `spans`, in order) adds to the rollups."""
    present: list[tuple[int, float | int, int]] = []
    for index, at, histogram in _MEASURES_AT:
        value = row[at]
        if value is not None:
            present.append((index, value, bin_of(float(value)) if histogram else -1))
    speed = tokens_per_second(row[_KIND], row[_STATUS], row[_OUTPUT], row[_DURATION])
    if speed is not None:
        present.append((_TOKENS_PER_SECOND, speed, -1))
    # Integer seconds (microseconds dropped, always >= 0): exact bucket arithmetic.
    since = row[_START] - BUCKET_ORIGIN
    return since.days * 86_400 + since.seconds, tuple([row[i] for i in _DIMENSIONS_AT]), present


def _aggregate(contributions: Sequence[Contribution], rollup: Rollup) -> list[list[Any]]:
    # Sorted by the table's key (bucket, dims_key): concurrent writers lock rows in one order.
    return sorted(_groups(contributions, rollup).values(), key=itemgetter(0, 1))


def _groups(
    contributions: Sequence[Contribution], rollup: Rollup
) -> dict[tuple[int, tuple[str | None, ...]], list[Any]]:
    """The delta row of each (bucket number, dimensions) of `rollup` that `contributions` fall into."""
    layout = _layout(rollup)
    seconds, picked = rollup.seconds, layout.dimension_positions
    measure_at, histogram_at, span_count = layout.measure_at_by_index, layout.histogram_at_by_index, layout.span_count
    rows: dict[tuple[int, tuple[str | None, ...]], list[Any]] = {}
    for since, all_dims, present in contributions:
        dims = all_dims if picked is None else tuple([all_dims[i] for i in picked])
        key = (since // seconds, dims)
        row = rows.get(key)
        if row is None:
            bucket = BUCKET_ORIGIN + timedelta(seconds=key[0] * seconds)
            row = rows[key] = [bucket, _dims_key(dims), *dims, *layout.empty]
        row[span_count] += 1
        for index, value, histogram in present:
            at = measure_at[index]
            row[at] += 1
            row[at + 1] += value
            low = row[at + 2]
            if low is None or value < low:
                row[at + 2] = value
            high = row[at + 3]
            if high is None or value > high:
                row[at + 3] = value
            if histogram >= 0:
                column = histogram_at[index] + histogram
                row[column] = (row[column] or 0) + 1
    return rows


@dataclass(frozen=True, slots=True)
class _Layout:
    dimension_positions: tuple[int, ...] | None  # where the rollup's dimensions are in _DIMENSION_COLUMNS
    span_count: int
    measure_at_by_index: tuple[int, ...]  # MEASURES order -> column of its `_count`
    histogram_at_by_index: tuple[int, ...]  # MEASURES order -> column of its first bin (-1: none)
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
    positions = tuple(_DIMENSION_COLUMNS.index(column) for column in rollup.dimension_columns)
    return _Layout(
        None if positions == tuple(range(len(_DIMENSION_COLUMNS))) else positions,
        span_count,
        tuple(measure_at[m] for m in _MEASURE_NAMES),
        tuple(histogram_at.get(m, -1) for m in _MEASURE_NAMES),
        empty,
    )


_HISTOGRAM_COLUMNS = {m: hist_columns(m) for m in HISTOGRAMS}
# Minute rollup -> the coarser rollups of the same dimensions that take its staged rows
# (`add_to_rollups`); the order in which writers upsert the tables (one order for all: their row
# locks cannot cross).
_COARSER: dict[Rollup, tuple[Rollup, ...]] = {
    fine: tuple(r for r in ROLLUPS if r.grain != "minute" and r.dimensions == fine.dimensions)
    for fine in ROLLUPS
    if fine.grain == "minute"
}
_TAKEN_FROM = {coarse for coarser in _COARSER.values() for coarse in coarser}
_WRITE_ORDER = (
    *(r for fine, coarser in _COARSER.items() for r in (fine, *coarser)),
    *(r for r in ROLLUPS if r not in _COARSER and r not in _TAKEN_FROM),
)


@cache
def _updates_of(table: Table) -> Any:
    """`additive_updates` for `table`, as one function per table (a part of the statement's cache key)."""
    return lambda new: additive_updates(table, new)


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
    zero: ColumnElement[Any] = literal_column("0")
    for columns in _HISTOGRAM_COLUMNS.values():
        for name in columns:
            updates[name] = case(
                (new[name].is_(None), table.c[name]), else_=func.coalesce(table.c[name], zero) + new[name]
            )
    return updates


async def add_to_rollups(conn: AsyncConnection, contributions: Sequence[Contribution]) -> None:
    """Add the spans this transaction newly stored (their `contribution`s) to every rollup table.

    The hour and day rows that are a minute row with a wider bucket (their only minute: most rows
    of a batch of live spans) are not built and sent again: they take the staged minute row,
    re-bucketed by the database, and only the others are aggregated and sent. Each row is the same
    as before, every sum added up in the same order.
    """
    if not contributions:
        return
    for rollup in _WRITE_ORDER:
        if rollup in _TAKEN_FROM:
            continue  # written with the minute rows it takes
        groups = _groups(contributions, rollup)
        coarser = _COARSER.get(rollup, ())
        also = [_rebucketed(contributions, groups, rollup, other) for other in coarser]
        for other in coarser:  # each row flagged for each coarser table: whether it takes the row
            ratio = other.seconds // rollup.seconds
            count = Counter((bucket // ratio, dims) for bucket, dims in groups)
            for (bucket, dims), row in groups.items():
                row.append(count[(bucket // ratio, dims)] == 1)
        rows = sorted(groups.values(), key=itemgetter(0, 1))
        await upsert_via_staging(
            conn, rollup.table, rows, key=("bucket", "dims_key"), updates=_updates_of(rollup.table), also=also
        )


def _rebucketed(
    contributions: Sequence[Contribution],
    groups: dict[tuple[int, tuple[str | None, ...]], list[Any]],
    fine: Rollup,
    coarse: Rollup,
) -> Rebucketed:
    """`coarse` as `fine`'s staged rows reach it: its rows that hold more than one of `groups`
    (the `fine` rows) aggregated here, the rest taken from the staged `fine` rows."""
    ratio = coarse.seconds // fine.seconds
    count = Counter((bucket // ratio, dims) for bucket, dims in groups)
    shared = {key for key, n in count.items() if n > 1}
    own: list[list[Any]] = []
    if shared:
        seconds, picked = coarse.seconds, _layout(coarse).dimension_positions
        if picked is None:
            mixed = [part for part in contributions if (part[0] // seconds, part[1]) in shared]
        else:  # the contributions carry every dimension: compare the rollup's own
            mixed = [
                part for part in contributions if (part[0] // seconds, tuple([part[1][i] for i in picked])) in shared
            ]
        own = _aggregate(mixed, coarse)
    return Rebucketed(coarse.table, coarse.seconds, _updates_of(coarse.table), own)


async def move_in_rollups(
    conn: AsyncConnection, *, removed: Sequence[Contribution], added: Sequence[Contribution]
) -> None:
    """Move stored spans between rollup rows (their environment was inherited after they were
    added): `removed` are their old contributions, `added` their new ones.

    Counts, sums and histogram bins are taken back exactly, inside the database as every writer
    adds; a row left without spans is deleted. A min or max cannot be taken back by subtraction:
    the row a span left keeps its min and max, which then bound the remaining values.
    """
    for rollup in _WRITE_ORDER:
        rows = _moved_rows(removed, added, rollup)
        if not rows:
            continue
        table = rollup.table
        await upsert_via_staging(conn, table, rows, key=("bucket", "dims_key"), updates=_updates_of(table))
        emptied = sorted({(row[0], row[1]) for row in rows})
        await conn.execute(
            table.delete().where(
                table.c.span_count <= 0,
                tuple_(table.c.bucket, table.c.dims_key).in_(emptied),
            )
        )


def _moved_rows(removed: Sequence[Contribution], added: Sequence[Contribution], rollup: Rollup) -> list[list[Any]]:
    """The delta rows of `rollup` that take `removed` out and put `added` in (rows netting to
    nothing, as when the rollup lacks the dimension that changed, are left out)."""
    layout = _layout(rollup)
    bounds = {at + offset for at in layout.measure_at_by_index for offset in (2, 3)}
    deltas = {(row[0], row[1]): row for row in _aggregate(added, rollup)}
    for row in _aggregate(removed, rollup):
        negated = [
            value if at < layout.span_count else None if at in bounds or value is None else -value
            for at, value in enumerate(row)
        ]
        key = (row[0], row[1])
        other = deltas.get(key)
        if other is None:
            deltas[key] = negated
            continue
        for at in range(layout.span_count, len(row)):
            change = negated[at]
            if at not in bounds and change is not None:
                other[at] = (other[at] or 0) + change
    return [
        row
        for key, row in sorted(deltas.items())
        if any(row[at] for at in range(layout.span_count, len(row)) if at not in bounds)
    ]
