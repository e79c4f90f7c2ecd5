"""Aggregation SQL of the metrics engine, per dialect: time buckets and exact percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from observatory_api.db.types import UTCDateTime

# Buckets start at 2000-01-03 (a Monday), as TimescaleDB's time_bucket does, so weeks start on Mondays.
BUCKET_ORIGIN_EPOCH = 946_857_600


class time_bucket(FunctionElement[Any]):
    """The start of the `seconds`-wide bucket holding `column`, as a UTC timestamp.

    `timescaledb` (from DatabaseCapabilities) picks TimescaleDB's `time_bucket` over PostgreSQL's
    `date_bin`: the same buckets, but TimescaleDB's can use its chunks and continuous aggregates.
    """

    # The width and the function are part of the SQL text (a whitelisted integer, a flag): they
    # are part of the cache key too, so statements with a bucket are compiled once per width and
    # backend, not on every execution.
    _traverse_internals = [
        *FunctionElement._traverse_internals,
        ("seconds", InternalTraversal.dp_plain_obj),
        ("timescaledb", InternalTraversal.dp_plain_obj),
    ]
    name = "time_bucket"

    def __init__(self, seconds: int, column: ColumnElement[Any], *, timescaledb: bool) -> None:
        self.seconds = int(seconds)
        self.timescaledb = timescaledb
        self.type = UTCDateTime()
        super().__init__(column)


@compiles(time_bucket, "postgresql")
def _time_bucket_pg(element: time_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    if element.timescaledb:
        return f"time_bucket(INTERVAL '{element.seconds} seconds', {col})"
    return f"date_bin(INTERVAL '{element.seconds} seconds', {col}, TIMESTAMPTZ '2000-01-03 00:00:00+00')"


@compiles(time_bucket, "sqlite")
def _time_bucket_sqlite(element: time_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    seconds, origin = element.seconds, BUCKET_ORIGIN_EPOCH
    return (
        f"datetime(((CAST(strftime('%s', {col}) AS INTEGER) - {origin}) / {seconds}) * {seconds} + {origin}, "
        "'unixepoch')"
    )


async def percentiles(
    conn: AsyncConnection, column: ColumnElement[Any], condition: ColumnElement[bool], fractions: list[float]
) -> list[float | None]:
    """Exact percentiles (linear interpolation, like percentile_cont) of `column` where `condition`."""
    if conn.dialect.name == "postgresql":
        stmt = select(*(func.percentile_cont(f).within_group(column.asc()) for f in fractions)).where(condition)
        row = (await conn.execute(stmt)).one()
        return [None if v is None else float(v) for v in row]
    # SQLite has no percentile function: read the two neighbours of each rank.
    count = (await conn.execute(select(func.count()).where(condition, column.is_not(None)))).scalar_one()
    results: list[float | None] = []
    for fraction in fractions:
        if count == 0:
            results.append(None)
            continue
        rank = fraction * (count - 1)
        lower = int(rank)
        stmt = select(column).where(condition, column.is_not(None)).order_by(column).limit(2).offset(lower)
        values = [float(v) for v in (await conn.execute(stmt)).scalars()]
        upper = values[1] if len(values) > 1 else values[0]
        results.append(values[0] + (upper - values[0]) * (rank - lower))
    return results


# Histogram bins summed by a strict bigint aggregate (PostgreSQL, migration 0013): a rollup row's
# bins are mostly NULL, and a strict transition skips a NULL without a call; `sum` would call
# int4_sum for each one (after a cast per bin) or accumulate a NUMERIC (bigint). An overflow
# raises, as bigint addition does. About a sixth to a quarter of a bin-summing statement's CPU
# (bench/RESULTS.md, "Histogram bins summed by a strict aggregate").
BIN_SUM = "metric_bin_sum"
BIN_SUM_DDL = (
    f"CREATE AGGREGATE {BIN_SUM}(bigint) (SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl, PARALLEL = SAFE)"
)


def bin_sum(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """The sum of the bigint histogram bins `value` (NULL when all are NULL), on PostgreSQL."""
    total: ColumnElement[Any] = getattr(func, BIN_SUM)(value, type_=BigInteger)
    return total


def json_array_elements(dialect_name: str, column: ColumnElement[Any], name: str) -> Any:
    """A table-valued function with one row (`.c.value`) per string of the JSON array `column`.

    Used in FROM after the table holding `column` (PostgreSQL functions in FROM are implicitly
    LATERAL; SQLite's json_each may name columns of earlier FROM items).
    """
    if dialect_name == "postgresql":
        return func.jsonb_array_elements_text(column).table_valued("value").render_derived(name=name)
    return func.json_each(column).table_valued("value", name=name)


def grouped_percentiles(
    dialect_name: str,
    *,
    keys: Sequence[Any],
    value: ColumnElement[Any],
    from_obj: Any,
    where: ColumnElement[bool],
    fractions: Sequence[float],
) -> Select[Any]:
    """Exact percentiles of `value` (non-null, where `where`) per group of the labelled `keys`.

    The columns are the keys (same labels) and `p0`, `p1`, ... for `fractions`, with
    percentile_cont's semantics (linear interpolation at rank p * (n - 1)) on both dialects.
    """
    condition = and_(where, value.is_not(None))
    if dialect_name == "postgresql":
        aggregates = [func.percentile_cont(f).within_group(value.asc()).label(f"p{i}") for i, f in enumerate(fractions)]
        return select(*keys, *aggregates).select_from(from_obj).where(condition).group_by(*keys)
    # SQLite 3.40 has no percentile function: rank the values of each group with window
    # functions, then pick the two neighbours of each rank and interpolate.
    partition = [key.element for key in keys] or None
    ranked = (
        select(
            *keys,
            value.label("v"),
            (func.row_number().over(partition_by=partition, order_by=value) - 1).label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .select_from(from_obj)
        .where(condition)
        .subquery("ranked")
    )
    r = ranked.c
    group = [r[key.name] for key in keys]
    aggregates = []
    for i, fraction in enumerate(fractions):
        rank = (r.n - 1) * literal(fraction, Double())
        lower = cast(rank, Integer)
        low = func.max(case((r.rn == lower, r.v)))
        high = func.max(case((r.rn == func.min(lower + 1, r.n - 1), r.v)))
        aggregates.append((low + (high - low) * func.max(rank - lower)).label(f"p{i}"))
    return select(*group, *aggregates).group_by(*group)
