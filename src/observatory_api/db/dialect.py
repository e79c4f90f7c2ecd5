"""The only place with per-dialect SQL (PostgreSQL vs SQLite).

Repositories and the writer call these helpers instead of branching on the dialect themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import asyncpg
import msgspec
from asyncpg.exceptions import IntegrityConstraintViolationError, UniqueViolationError
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Double,
    Insert,
    Integer,
    ScalarSelect,
    Select,
    String,
    Subquery,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exc,
    func,
    literal,
    literal_column,
    select,
    sql,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from observatory_api.db.types import UTCDateTime

# ---------------------------------------------------------------------------
# Read side
# ---------------------------------------------------------------------------


class json_array_contains(FunctionElement[bool]):
    """`column` (a JSON array of strings) holds `value`. GIN-indexable `@>` on PostgreSQL."""

    type = Boolean()
    inherit_cache = True
    name = "json_array_contains"

    def __init__(self, column: ColumnElement[Any], value: str) -> None:
        super().__init__(column, bindparam(None, value, type_=String()))


@compiles(json_array_contains, "postgresql")
def _json_array_contains_pg(element: json_array_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return f"({compiler.process(column, **kw)} @> jsonb_build_array(CAST({compiler.process(value, **kw)} AS TEXT)))"


@compiles(json_array_contains, "sqlite")
def _json_array_contains_sqlite(element: json_array_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return (
        f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "  # noqa: S608 - compiled clauses only
        f"WHERE json_each.value = {compiler.process(value, **kw)})"
    )


JSON_PATH_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists")
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class json_path_condition(FunctionElement[bool]):
    """A condition on the value at `path` inside a JSON document column.

    `op` is one of JSON_PATH_OPS; ordering operators only match values of the same JSON type as
    `value` (a number is never "greater" than a string). The path is one bound parameter: a text[]
    on PostgreSQL (each key is data, so `a,b` or `a}` is one key, never array-literal syntax), a
    JSON path of quoted labels on SQLite. Keys must not hold `"` or control characters (the filter
    language refuses them): SQLite's path syntax has no escape for `"`.
    """

    type = Boolean()
    # The operator and path shape change the SQL text, and they are not clause arguments.
    inherit_cache = False
    name = "json_path_condition"

    def __init__(self, column: ColumnElement[Any], path: list[str], op: str, value: Any = None) -> None:
        if op not in JSON_PATH_OPS:
            raise ValueError(f"unknown JSON path operator {op!r}")
        self.path = path
        self.path_op = op  # not `op`: that is the expression method ColumnElement.op()
        self.value = value
        super().__init__(column)


def _json_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@compiles(json_path_condition, "postgresql")
def _json_path_condition_pg(element: json_path_condition, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    path = compiler.process(bindparam(None, list(element.path), type_=postgresql.ARRAY(Text())), **kw)
    at_path = f"({col} #> {path})"
    if element.path_op == "exists":
        return f"({at_path} IS NOT NULL)"
    if element.path_op == "contains":
        pattern = compiler.process(bindparam(None, _like_pattern(str(element.value)), type_=Text()), **kw)
        return f"(({col} #>> {path}) ILIKE {pattern})"
    value = compiler.process(bindparam(None, json.dumps(element.value), type_=Text()), **kw)
    comparison = f"({at_path} {_SQL_OPS[element.path_op]} CAST({value} AS JSONB))"
    if element.path_op in ("eq", "ne"):
        return comparison
    return f"(jsonb_typeof({at_path}) = '{_json_type_of(element.value)}' AND {comparison})"


_SQLITE_TYPES = {"number": "('integer', 'real')", "string": "('text')", "boolean": "('true', 'false')"}


_SQLITE_INTEGER = range(-(2**63), 2**63)


def _sqlite_json_path(path: list[str]) -> str:
    """`$."a"."b"`, each label escaped as the stored JSON text escapes its keys (SQLAlchemy's
    json.dumps, ASCII only): SQLite 3.40 compares a label with a key's raw text, newer versions
    unescape both, and either way `é` or a backslash then matches."""
    if any('"' in key for key in path):
        raise ValueError('a JSON path key may not hold `"` on SQLite')
    return "$" + "".join(f'."{json.dumps(key)[1:-1]}"' for key in path)


@compiles(json_path_condition, "sqlite")
def _json_path_condition_sqlite(element: json_path_condition, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    path = compiler.process(bindparam(None, _sqlite_json_path(element.path), type_=Text()), **kw)
    if element.path_op == "exists":
        return f"(json_type({col}, {path}) IS NOT NULL)"
    extracted = f"json_extract({col}, {path})"
    if element.path_op == "contains":
        pattern = compiler.process(bindparam(None, _like_pattern(str(element.value)), type_=Text()), **kw)
        return f"({extracted} LIKE {pattern} ESCAPE '\\')"
    raw = element.value
    if isinstance(raw, bool):
        raw = int(raw)
    elif isinstance(raw, int) and raw not in _SQLITE_INTEGER:
        raw = float(raw)  # SQLite binds 64-bit integers only; JSON numbers compare as numbers anyway
    value = compiler.process(bindparam(None, raw), **kw)
    json_types = _SQLITE_TYPES[_json_type_of(raw)]
    return f"(json_type({col}, {path}) IN {json_types} AND {extracted} {_SQL_OPS[element.path_op]} {value})"


# Buckets start at 2000-01-03 (a Monday), as TimescaleDB's time_bucket does, so weeks start on Mondays.
BUCKET_ORIGIN_EPOCH = 946_857_600


class time_bucket(FunctionElement[Any]):
    """The start of the `seconds`-wide bucket holding `column`, as a UTC timestamp."""

    # The width is part of the SQL text (a whitelisted integer): it is part of the cache key too,
    # so statements with a bucket are compiled once per width, not on every execution.
    _traverse_internals = [*FunctionElement._traverse_internals, ("seconds", InternalTraversal.dp_plain_obj)]
    name = "time_bucket"

    def __init__(self, seconds: int, column: ColumnElement[Any]) -> None:
        self.seconds = int(seconds)
        self.type = UTCDateTime()
        super().__init__(column)


@compiles(time_bucket, "postgresql")
def _time_bucket_pg(element: time_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    col = compiler.process(column, **kw)
    if compiler.dialect.__dict__.get("observatory_timescaledb"):
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


def mark_timescaledb(dialect: Any, present: bool) -> None:
    """Remember on the engine's dialect whether TimescaleDB is installed (checked once at start-up)."""
    dialect.observatory_timescaledb = present


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


# ---------------------------------------------------------------------------
# Write side (used by observatory_api.storage.writer)
# ---------------------------------------------------------------------------


class epoch_ms_between(FunctionElement[float]):
    """Milliseconds from `start` to `end`, two timestamp expressions (aggregates allowed)."""

    type = Double()
    inherit_cache = True
    name = "epoch_ms_between"

    def __init__(self, start: ColumnElement[Any], end: ColumnElement[Any]) -> None:
        super().__init__(start, end)


@compiles(epoch_ms_between, "postgresql")
def _epoch_ms_between_pg(element: epoch_ms_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(extract(epoch from {end} - {start}) * 1000 AS DOUBLE PRECISION)"


@compiles(epoch_ms_between, "sqlite")
def _epoch_ms_between_sqlite(element: epoch_ms_between, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's date functions keep only milliseconds, but UTCDateTime text always holds six
    # microsecond digits at characters 21-26: whole seconds and microseconds are taken apart
    # and subtracted as integers, so the result is exact.
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    seconds = f"(CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER))"
    micros = f"(CAST(substr({end}, 21, 6) AS INTEGER) - CAST(substr({start}, 21, 6) AS INTEGER))"
    return f"(({seconds} * 1000000 + {micros}) / 1000.0)"


class database_clock(FunctionElement[datetime]):
    """The database server's current time, at the statement (not the transaction's start): one
    clock shared by every worker and instance, whatever their own clocks say."""

    type = UTCDateTime()
    inherit_cache = True
    name = "database_clock"


@compiles(database_clock, "postgresql")
def _database_clock_pg(element: database_clock, compiler: SQLCompiler, **kw: Any) -> str:
    return "clock_timestamp()"


@compiles(database_clock, "sqlite")
def _database_clock_sqlite(element: database_clock, compiler: SQLCompiler, **kw: Any) -> str:
    # UTCDateTime's text: six microsecond digits (SQLite's clock keeps milliseconds).
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def earliest(dialect_name: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    """The smaller of two non-null values (SQLite's two-argument min() is its least())."""
    return func.least(left, right) if dialect_name == "postgresql" else func.min(left, right)


def latest(dialect_name: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    """The larger of two non-null values."""
    return func.greatest(left, right) if dialect_name == "postgresql" else func.max(left, right)


def sorted_json_array(dialect_name: str, values: Subquery) -> ScalarSelect[Any]:
    """A JSON array of the non-null values of the one column of `values`, sorted; `[]` if none.

    `values` must carry its own ORDER BY: SQLite 3.40 has no ORDER BY inside aggregates, and
    json_group_array then follows the order of its (unflattened) subquery.
    """
    (value,) = values.c
    if dialect_name == "postgresql":
        # COLLATE "C" sorts by code point, as SQLite's BINARY does, whatever the database locale.
        ordered = postgresql.aggregate_order_by(value, value.collate("C"))
        aggregate: ColumnElement[Any] = func.coalesce(func.jsonb_agg(ordered), literal_column("'[]'::jsonb"))
    else:
        aggregate = func.json_group_array(value)
    return select(aggregate).select_from(values).where(value.is_not(None)).scalar_subquery()


def is_empty_json_array(dialect_name: str, column: ColumnElement[Any]) -> ColumnElement[bool]:
    """`column` (a JSON document holding an array) is `[]`."""
    if dialect_name == "postgresql":
        return column == literal_column("'[]'::jsonb")
    return func.json_array_length(column) == 0


def in_bound_list(dialect_name: str, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column` is one of the strings bound as parameter `name` (a list) at execution.

    PostgreSQL gets one array parameter (`= ANY(:name)`): the statement text stays the same
    whatever the list's length, so asyncpg prepares it once instead of for every length (planning
    the summary refresh took ~3 ms). SQLite expands the list into `IN (?, ?, ...)`.
    """
    if dialect_name == "postgresql":
        return column == func.any(bindparam(name, type_=postgresql.ARRAY(String())))
    return column.in_(bindparam(name, expanding=True))


def upsert_from_select(dialect_name: str, table: Table, rows: Select[Any], *, key: Sequence[str]) -> Insert:
    """INSERT every column of `table` from `rows` (same order); on a `key` conflict, overwrite the rest."""
    columns = [column.name for column in table.columns]
    statement = _dialect_insert(dialect_name, table).from_select(columns, rows)
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: statement.excluded[name] for name in columns if name not in key},
    )


def dialect_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The INSERT construct of the dialect, with ON CONFLICT support."""
    return _dialect_insert(dialect_name, table)


def _dialect_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect_name!r}")


async def insert_ignoring_duplicates(conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]]) -> int:
    """Insert `rows` (tuples in the table's column order) in the current transaction.

    Rows whose primary key is already stored are skipped, not updated; other constraint
    violations raise. Returns the number of rows newly stored.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        count, _ = await _copy_ignoring_duplicates_pg(conn, table, rows)
        return count
    names = [column.name for column in table.columns]
    # ON CONFLICT DO NOTHING, not INSERT OR IGNORE: OR IGNORE also drops NOT NULL violations.
    statement = _dialect_insert(conn.dialect.name, table).on_conflict_do_nothing()
    result = await conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
    return result.rowcount


async def _copy_ignoring_duplicates_pg(
    conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]], returning: Sequence[str] = ()
) -> tuple[int, list[tuple[Any, ...]]]:
    # COPY cannot skip conflicts, so it fills a temporary staging table that INSERT ... SELECT
    # then moves over with ON CONFLICT DO NOTHING.
    staging = await _copy_to_staging_pg(conn, table, rows)
    cache_key = ("postgresql", table.name, "nothing", tuple(returning))
    insert = _MOVES.get(cache_key)
    if insert is None:
        staged = _draining(staging)
        names = [c.name for c in table.columns]
        # In key order: concurrent writers of overlapping batches wait on each other's keys in
        # one order instead of deadlocking.
        key = [staged.c[c.name] for c in table.primary_key.columns]
        insert = postgresql.insert(table).from_select(names, select(*staged.c).order_by(*key)).on_conflict_do_nothing()
        if returning:
            insert = insert.returning(*(table.c[name] for name in returning))
        _MOVES[cache_key] = insert
    moved = await conn.execute(insert)
    keys = [tuple(row) for row in moved] if returning else []
    return (len(keys) if returning else moved.rowcount), keys


async def _copy_if_all_new_pg(
    conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]], *, key: Sequence[str]
) -> list[tuple[Any, ...]] | None:
    """COPY `rows` straight into `table`; None, with nothing stored, if one of them is already there.

    Repeats are rare (a retried export): this skips the staging table and its INSERT ... SELECT
    for the common batch, and a savepoint undoes the attempt otherwise.
    """
    names = [column.name for column in table.columns]
    at = [names.index(name) for name in key]
    # In key order: concurrent writers of overlapping batches wait on each other's keys in one
    # order instead of deadlocking.
    ordered = sorted(rows, key=lambda row: tuple(row[i] for i in at))
    try:
        async with conn.begin_nested():
            await _copy_pg(conn, table.name, table, ordered)
    except exc.IntegrityError as error:
        if isinstance(error.orig, UniqueViolationError):
            return None
        raise
    return [tuple(row[i] for i in at) for row in ordered]


async def _copy_pg(conn: AsyncConnection, target: str, table: Table, rows: Sequence[Sequence[Any]]) -> None:
    """Binary COPY of `rows` (in `table`'s column order) into `target`, in the open transaction."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # an open connection has its asyncpg connection
    try:
        await driver.copy_records_to_table(
            target, records=_copy_records(table, rows), columns=[c.name for c in table.columns]
        )
    except asyncpg.PostgresError as error:
        # The raw driver raises its own errors: give callers the ones SQLAlchemy raises elsewhere.
        integrity = isinstance(error, IntegrityConstraintViolationError)
        wrapper = exc.IntegrityError if integrity else exc.DBAPIError
        raise wrapper(f"COPY {target}", None, error) from error


@cache
@cache
def _staging_name(table: Table) -> str:
    # The staging table outlives transactions: its name follows the columns, so a connection
    # opened before a migration changed them does not COPY into a stale copy. Cached: the repr
    # of ~370 column types took ~3% of an ingest worker's time when rebuilt for every batch.
    shape = ",".join(f"{column.name}:{column.type!r}" for column in table.columns)
    return f"_staging_{table.name}_{hashlib.blake2b(shape.encode(), digest_size=4).hexdigest()}"


@cache
def _staging_clause(table: Table) -> sql.TableClause:
    # Built once: a 370-column TableClause cost ~8% of the ingest worker's time when rebuilt per batch.
    return sql.table(_staging_name(table), *(sql.column(column.name) for column in table.columns))


def _draining(staging: sql.TableClause) -> Any:
    """A CTE that empties `staging` and yields its rows: the move leaves it ready for reuse."""
    return sql.delete(staging).returning(*staging.c).cte(f"{staging.name}_rows")


async def _copy_to_staging_pg(conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]]) -> sql.TableClause:
    """COPY `rows` into this connection's staging table for `table` (created on first use).

    The staging table outlives the transaction (creating a 370-column temporary table cost ~3 ms
    per batch); ON COMMIT DELETE ROWS, and the draining move, leave it empty for the next one.
    Running the CREATE through SQLAlchemy also opens the transaction that the raw COPY joins.
    """
    preparer = conn.dialect.identifier_preparer
    staging_name = _staging_name(table)
    await conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.quote(staging_name)} "
        f"(LIKE {preparer.format_table(table)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await _copy_pg(conn, staging_name, table, rows)
    return _staging_clause(table)


# The statements that move staged rows, built once per (dialect, table, kind of move).
_MOVES: dict[tuple[Any, ...], Any] = {}


def _copy_records(table: Table, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows as asyncpg's binary COPY wants them: JSON as text, timestamps timezone-aware."""
    json_at = [i for i, column in enumerate(table.columns) if isinstance(column.type, JSON)]
    time_at = [i for i, column in enumerate(table.columns) if isinstance(column.type, UTCDateTime)]
    encode = msgspec.json.encode
    records = []
    for row in rows:
        for i in time_at:
            if row[i] is not None and row[i].tzinfo is None:
                raise ValueError("naive datetime: timestamps must carry a timezone")
        if json_at:
            record = list(row)
            for i in json_at:
                if record[i] is not None:
                    record[i] = encode(record[i]).decode()
            records.append(tuple(record))
        else:  # the wide rollup rows: no copy beyond the tuple
            records.append(tuple(row))
    return records


# ---------------------------------------------------------------------------
# Metrics (observatory_api.metrics: the query engine and the rollup writer)
# ---------------------------------------------------------------------------


async def insert_new_rows(
    conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]], *, key: Sequence[str]
) -> list[tuple[Any, ...]]:
    """As `insert_ignoring_duplicates`, returning the `key` columns of the rows newly stored only.

    Rows skipped as duplicates are not returned, also under concurrent writers: the database
    reports what its own INSERT stored (RETURNING), nothing is checked beforehand.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        stored = await _copy_if_all_new_pg(conn, table, rows, key=key)
        if stored is not None:
            return stored
        _, keys = await _copy_ignoring_duplicates_pg(conn, table, rows, returning=key)
        return keys
    names = [column.name for column in table.columns]
    statement = _dialect_insert(conn.dialect.name, table).on_conflict_do_nothing().returning(*(table.c[k] for k in key))
    result = await conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
    return [tuple(row) for row in result]


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


async def upsert_via_staging(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Sequence[Any]],
    *,
    key: Sequence[str],
    updates: Any,
) -> None:
    """INSERT `rows` (tuples in the table's column order); on a `key` conflict SET `updates(excluded)`.

    The rows go to a temporary staging table first (COPY on PostgreSQL, a plain executemany on
    SQLite), then one INSERT ... SELECT ... ON CONFLICT moves them in key order: wide rows skip
    SQLAlchemy's per-parameter processing. `rows` must not repeat a key.
    """
    if not rows:
        return
    dialect_name = conn.dialect.name
    names = [column.name for column in table.columns]
    if dialect_name == "postgresql":
        staging = await _copy_to_staging_pg(conn, table, rows)
    else:
        staging = await _fill_staging_sqlite(conn, table, rows)
    cache_key = (dialect_name, table.name, "update", tuple(key))
    upsert = _MOVES.get(cache_key)
    if upsert is None:
        source = _draining(staging) if dialect_name == "postgresql" else staging
        order = [source.c[name] for name in key]
        # `WHERE true`: SQLite cannot tell an upsert's ON from a join's without a WHERE clause.
        rows_in_order = select(*source.c).where(sql.true()).order_by(*order)
        statement = _dialect_insert(dialect_name, table).from_select(names, rows_in_order)
        upsert = statement.on_conflict_do_update(index_elements=list(key), set_=updates(statement.excluded))
        _MOVES[cache_key] = upsert
    await conn.execute(upsert)
    if dialect_name != "postgresql":  # SQLite has no DELETE in a CTE: empty it for the next use
        await conn.exec_driver_sql(f"DELETE FROM {conn.dialect.identifier_preparer.quote(staging.name)}")  # noqa: S608


async def _fill_staging_sqlite(conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]]) -> sql.TableClause:
    preparer = conn.dialect.identifier_preparer
    staging_name = _staging_name(table)
    staging_sql = preparer.quote(staging_name)
    names = [column.name for column in table.columns]
    await conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging_sql} AS SELECT * FROM {preparer.format_table(table)} WHERE 0"  # noqa: S608
    )
    placeholders = ", ".join("?" for _ in names)
    # Columns named: a migration that added columns leaves the database's order unlike `table`'s.
    listed = ", ".join(preparer.quote(name) for name in names)
    await conn.exec_driver_sql(
        f"INSERT INTO {staging_sql} ({listed}) VALUES ({placeholders})",  # noqa: S608 - names from the schema
        [tuple(_sqlite_value(value) for value in row) for row in rows],
    )
    return _staging_clause(table)


def _sqlite_value(value: Any) -> Any:
    # The text form UTCDateTime stores on SQLite: naive UTC, always six microsecond digits.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def prepare_write_transaction(conn: AsyncConnection) -> None:
    """Per-transaction settings of the writer's transactions.

    PostgreSQL: no JIT. With statistics that lag behind a fast-growing table, the summary refresh
    was estimated at ~10^6 rows and JIT-compiled for about a second per batch, to read ~4,000.
    SQLite: take the write lock at once (a write that matches no row). The driver begins the
    transaction only at its first write, so the writer's reads before its inserts (is this span
    id stored at another time?) could otherwise miss what another process commits meanwhile.
    """
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL jit = off")
    elif conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("UPDATE spans SET span_id = span_id WHERE 0")


# Namespaces (first key) of the writer's transaction-scoped advisory locks.
SUMMARY_LOCKS = {"traces": 7_301, "sessions": 7_302}


async def lock_summaries(conn: AsyncConnection, kind: str, ids: Sequence[str]) -> None:
    """Wait for, and hold until commit, the summary rows `ids` of `kind` ("traces" or "sessions").

    PostgreSQL, READ COMMITTED: two writers that refresh one trace at once would each recompute it
    without the other's uncommitted spans, and the later commit would win with a short summary.
    Held here, the refresh's next statement sees what the other committed. Locks are taken in
    key order, so writers cannot deadlock on them. SQLite already runs one writer at a time.
    """
    if conn.dialect.name != "postgresql" or not ids:
        return
    await conn.exec_driver_sql(
        "SELECT pg_advisory_xact_lock($1::int, key) FROM "
        "(SELECT DISTINCT hashtext(id) AS key FROM unnest($2::text[]) AS id ORDER BY key) AS keys",
        (SUMMARY_LOCKS[kind], list(ids)),
    )


async def analyze_tables(conn: AsyncConnection, tables: Mapping[str, Sequence[str]]) -> None:
    """Refresh the planner statistics of `tables` (the writer calls it as its tables grow).

    A non-empty column list limits PostgreSQL's ANALYZE to those columns; SQLite analyses indexes.
    """
    preparer = conn.dialect.identifier_preparer
    if conn.dialect.name == "postgresql":
        targets = [
            preparer.quote(name) + (f" ({', '.join(preparer.quote(c) for c in columns)})" if columns else "")
            for name, columns in tables.items()
        ]
        await conn.exec_driver_sql(f"ANALYZE {', '.join(targets)}")
    else:
        for name in tables:
            await conn.exec_driver_sql(f"ANALYZE {preparer.quote(name)}")


# The table and the tables that inherit from it: a TimescaleDB hypertable keeps its rows in chunks.
_ESTIMATED_ROWS = sql.text(
    "SELECT coalesce(sum(greatest(reltuples, 0)), 0) FROM pg_class WHERE oid = to_regclass(:name) "
    "OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:name))"
)


async def estimated_rows(conn: AsyncConnection, table: str) -> int:
    """The planner's estimate of `table`'s row count, its inheriting tables (hypertable chunks)
    included (PostgreSQL's reltuples: no scan); 0 for what was never analysed, and always 0 on
    SQLite, which keeps no such estimate."""
    if conn.dialect.name != "postgresql":
        return 0
    return int(await conn.scalar(_ESTIMATED_ROWS, {"name": table}) or 0)
