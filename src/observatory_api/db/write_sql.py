"""The writer's per-dialect SQL: expressions of the summary refresh, INSERT ... ON CONFLICT,
the writer's transaction settings, locks and planner statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Insert,
    ScalarSelect,
    Select,
    String,
    Subquery,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    sql,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from observatory_api.db.types import UTCDateTime


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
    statement = dialect_insert(dialect_name, table).from_select(columns, rows)
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: statement.excluded[name] for name in columns if name not in key},
    )


def dialect_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The INSERT construct of the dialect, with ON CONFLICT support."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect_name!r}")


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
# The one key of the lock on the order in which writers take their locks (`lock_write_order`).
_WRITE_ORDER_LOCK = (7_303, 0)


async def lock_write_order(conn: AsyncConnection, *, exclusive: bool) -> None:
    """Hold until commit the lock on the writers' lock order, shared or alone.

    Most writers take their span keys and rollup rows before the summaries' locks, and hold it
    shared; a writer that must take them the other way round holds it alone, so it never runs
    beside one that could wait for it in the opposite order. Taken first in a transaction.
    SQLite already runs one writer at a time.
    """
    if conn.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await conn.exec_driver_sql(f"SELECT {function}($1::int, $2::int)", _WRITE_ORDER_LOCK)


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
