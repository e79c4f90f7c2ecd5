"""Bulk inserts of the writer and the rollups: binary COPY through a staging table on
PostgreSQL, executemany on SQLite; duplicates skipped or upserted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any

import asyncpg
import msgspec
from asyncpg.exceptions import IntegrityConstraintViolationError, UniqueViolationError
from sqlalchemy import (
    JSON,
    Table,
    exc,
    func,
    literal,
    select,
    sql,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.metric_sql import time_bucket
from observatory_api.db.types import UTCDateTime
from observatory_api.db.write_sql import dialect_insert


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
    statement = dialect_insert(conn.dialect.name, table).on_conflict_do_nothing()
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
    ordered = sorted(rows, key=itemgetter(*at))
    try:
        async with conn.begin_nested():
            await _copy_pg(conn, table.name, table, ordered)
    except exc.IntegrityError as error:
        if isinstance(error.orig, UniqueViolationError):
            return None
        raise
    key_of = itemgetter(*at)
    return [key_of(row) for row in ordered] if len(at) > 1 else [(key_of(row),) for row in ordered]


async def _copy_pg(
    conn: AsyncConnection, target: str, table: Table, rows: Sequence[Sequence[Any]], flags: int = 0
) -> None:
    """Binary COPY of `rows` (in `table`'s column order, then `flags` booleans) into `target`, in
    the open transaction."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # an open connection has its asyncpg connection
    try:
        await driver.copy_records_to_table(
            target, records=_copy_records(table, rows), columns=[*(c.name for c in table.columns), *_flags(flags)]
        )
    except asyncpg.PostgresError as error:
        # The raw driver raises its own errors: give callers the ones SQLAlchemy raises elsewhere.
        integrity = isinstance(error, IntegrityConstraintViolationError)
        wrapper = exc.IntegrityError if integrity else exc.DBAPIError
        raise wrapper(f"COPY {target}", None, error) from error


@cache
def _staging_name(table: Table, flags: int = 0) -> str:
    # The staging table outlives transactions: its name follows the columns, so a connection
    # opened before a migration changed them does not COPY into a stale copy. Cached: the repr
    # of ~370 column types took ~3% of an ingest worker's time when rebuilt for every batch.
    shape = ",".join([*(f"{column.name}:{column.type!r}" for column in table.columns), *_flags(flags)])
    return f"_staging_{table.name}_{hashlib.blake2b(shape.encode(), digest_size=4).hexdigest()}"


@cache
def _staging_clause(table: Table, flags: int = 0) -> sql.TableClause:
    # Built once: a 370-column TableClause cost ~8% of the ingest worker's time when rebuilt per batch.
    names = [*(column.name for column in table.columns), *_flags(flags)]
    return sql.table(_staging_name(table, flags), *(sql.column(name) for name in names))


def _flags(count: int) -> list[str]:
    """The names of a staging table's flag columns (`upsert_via_staging`'s `also`)."""
    return [f"_to_{i}" for i in range(count)]


def _draining(staging: sql.TableClause) -> Any:
    """A CTE that empties `staging` and yields its rows: the move leaves it ready for reuse."""
    return sql.delete(staging).returning(*staging.c).cte(f"{staging.name}_rows")


async def _copy_to_staging_pg(
    conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]], flags: int = 0
) -> sql.TableClause:
    """COPY `rows` into this connection's staging table for `table` (created on first use).

    The staging table outlives the transaction (creating a 370-column temporary table cost ~3 ms
    per batch); ON COMMIT DELETE ROWS, and the draining move, leave it empty for the next one.
    Running the CREATE through SQLAlchemy also opens the transaction that the raw COPY joins.
    """
    preparer = conn.dialect.identifier_preparer
    staging_name = _staging_name(table, flags)
    extra = "".join(f", {name} boolean" for name in _flags(flags))
    await conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {preparer.quote(staging_name)} "
        f"(LIKE {preparer.format_table(table)} INCLUDING DEFAULTS{extra}) ON COMMIT DELETE ROWS"
    )
    await _copy_pg(conn, staging_name, table, rows, flags)
    return _staging_clause(table, flags)


# The statements that move staged rows, built once per (dialect, table, kind of move).
_MOVES: dict[tuple[Any, ...], Any] = {}


@cache
def _typed_positions(table: Table) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where `table`'s JSON columns and its timestamps are, in column order."""
    json_at = tuple(i for i, column in enumerate(table.columns) if isinstance(column.type, JSON))
    return json_at, tuple(i for i, column in enumerate(table.columns) if isinstance(column.type, UTCDateTime))


def _copy_records(table: Table, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """Rows as asyncpg's binary COPY wants them: JSON as text, timestamps timezone-aware. COPY
    only indexes each row: lists pass as they are (no tuple copy of the 370-column rollup rows)."""
    json_at, time_at = _typed_positions(table)
    for row in rows:
        for i in time_at:
            if row[i] is not None and row[i].tzinfo is None:
                raise ValueError("naive datetime: timestamps must carry a timezone")
    if not json_at:  # the wide rollup rows
        return rows
    encode = msgspec.json.encode
    records = []
    for row in rows:
        record = list(row)
        for i in json_at:
            if record[i] is not None:
                record[i] = encode(record[i]).decode()
        records.append(record)
    return records


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
    statement = dialect_insert(conn.dialect.name, table).on_conflict_do_nothing().returning(*(table.c[k] for k in key))
    result = await conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
    return [tuple(row) for row in result]


async def upsert_via_staging(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Sequence[Any]],
    *,
    key: Sequence[str],
    updates: Any,
    also: Sequence[Rebucketed] = (),
) -> None:
    """INSERT `rows` (tuples in the table's column order); on a `key` conflict SET `updates(excluded)`.

    The rows go to a temporary staging table first (COPY on PostgreSQL, a plain executemany on
    SQLite), then one INSERT ... SELECT ... ON CONFLICT moves them in key order: wide rows skip
    SQLAlchemy's per-parameter processing. `rows` must not repeat a key.

    `also`: tables of the same columns that take some of the same staged rows, re-bucketed (see
    `Rebucketed`), each in one statement in key order: wide rows are sent once for several tables.
    Each row of `rows` then ends with one flag per entry of `also`: whether that table takes it.
    """
    if not rows:
        return
    dialect_name = conn.dialect.name
    postgresql_ = dialect_name == "postgresql"
    flags = len(also)
    staging = await _stage(conn, table, rows, flags)
    # PostgreSQL: a move that empties the staging table (a DELETE in a CTE) for its next use.
    drain = postgresql_ and not flags
    cache_key = (dialect_name, table.name, "update", tuple(key), flags, drain)
    upsert = _MOVES.get(cache_key)
    if upsert is None:
        source = _draining(staging) if drain else staging
        upsert = _MOVES[cache_key] = _upsert(dialect_name, table, _columns_of(table, source), key, updates)
    await conn.execute(upsert)
    used = [] if drain else [staging]
    for index, other in enumerate(also):
        own = await _stage(conn, other.table, other.rows, 0) if other.rows else None
        statement_key = (dialect_name, other.table.name, table.name, tuple(key), flags, index, own is None)
        statement = _MOVES.get(statement_key)
        if statement is None:
            taken = _columns_of(table, staging)
            widened = [_widened(dialect_name, taken[0], other.seconds).label(taken[0].name), *taken[1:]]
            parts: Any = select(*widened).where(staging.c[_flags(flags)[index]])
            if own is not None:
                parts = parts.union_all(select(*_columns_of(other.table, own)))
            statement = _MOVES[statement_key] = _upsert(
                dialect_name, other.table, list(parts.subquery().c), key, other.updates
            )
        await conn.execute(statement)
        used += [] if own is None else [own]
    for emptied in used:  # for the next use in this transaction (SQLite's outlive it, too)
        await conn.exec_driver_sql(f"DELETE FROM {conn.dialect.identifier_preparer.quote(emptied.name)}")  # noqa: S608


@dataclass(frozen=True, slots=True)
class Rebucketed:
    """A table with the columns of another, that takes the staged rows flagged for it with their
    bucket (the first key column) widened to `seconds` (3600 or 86400: an hour or a day from
    2000-01-03 UTC), beside `rows` of its own; `updates(excluded)` is its SET clause. A flagged
    row must be alone in its wider bucket and key, and apart from `rows`' keys."""

    table: Table
    seconds: int
    updates: Any
    rows: Sequence[Sequence[Any]]


async def _stage(conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]], flags: int) -> sql.TableClause:
    if conn.dialect.name == "postgresql":
        return await _copy_to_staging_pg(conn, table, rows, flags)
    return await _fill_staging_sqlite(conn, table, rows, flags)


def _columns_of(table: Table, source: Any) -> list[Any]:
    """`source`'s columns of `table` (a staging table's flags left out), in `table`'s order."""
    return [source.c[column.name] for column in table.columns]


def _upsert(dialect_name: str, target: Table, columns: list[Any], key: Sequence[str], updates: Any) -> Any:
    """INSERT INTO `target` the rows of `columns` in key order; on a conflict SET `updates(excluded)`."""
    by_name = {column.name: column for column in columns}
    # `WHERE true`: SQLite cannot tell an upsert's ON from a join's without a WHERE clause.
    rows_in_order = select(*columns).where(sql.true()).order_by(*(by_name[name] for name in key))
    names = [column.name for column in target.columns]
    statement = dialect_insert(dialect_name, target).from_select(names, rows_in_order)
    return statement.on_conflict_do_update(index_elements=list(key), set_=updates(statement.excluded))


def _widened(dialect_name: str, bucket: Any, seconds: int) -> Any:
    """The `seconds`-wide bucket holding the bucket start `bucket`, as the column stores it."""
    if dialect_name == "postgresql":
        return time_bucket(seconds, bucket, timescaledb=False)
    # SQLite stores `%Y-%m-%d %H:%M:%S.%f` text (`_sqlite_value`): an hour or a day is a prefix.
    kept = {3600: (13, ":00:00.000000"), 86_400: (10, " 00:00:00.000000")}
    if seconds not in kept:
        raise ValueError(f"buckets of {seconds} s cannot be widened on SQLite")
    length, rest = kept[seconds]
    return func.substr(bucket, 1, length).concat(literal(rest))


async def _fill_staging_sqlite(
    conn: AsyncConnection, table: Table, rows: Sequence[Sequence[Any]], flags: int = 0
) -> sql.TableClause:
    preparer = conn.dialect.identifier_preparer
    staging_name = _staging_name(table, flags)
    staging_sql = preparer.quote(staging_name)
    names = [*(column.name for column in table.columns), *_flags(flags)]
    extra = "".join(f", 0 AS {name}" for name in _flags(flags))
    source = preparer.format_table(table)
    await conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging_sql} AS SELECT *{extra} FROM {source} WHERE 0"  # noqa: S608
    )
    placeholders = ", ".join("?" for _ in names)
    # Columns named: a migration that added columns leaves the database's order unlike `table`'s.
    listed = ", ".join(preparer.quote(name) for name in names)
    await conn.exec_driver_sql(
        f"INSERT INTO {staging_sql} ({listed}) VALUES ({placeholders})",  # noqa: S608 - names from the schema
        _sqlite_rows(table, rows),
    )
    return _staging_clause(table, flags)


def _sqlite_rows(table: Table, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    # Only the timestamp columns change: a call per value cost ~28 ms per 600 rollup rows of
    # 371 columns (a batch of 512 live spans), this ~6.5 ms.
    time_at = _typed_positions(table)[1]
    converted = []
    for row in rows:
        values = list(row)
        for i in time_at:
            values[i] = _sqlite_value(values[i])
        converted.append(tuple(values))
    return converted


def _sqlite_value(value: Any) -> Any:
    # The text form UTCDateTime stores on SQLite: naive UTC, always six microsecond digits.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value
