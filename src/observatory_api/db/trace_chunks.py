"""TimescaleDB: a trace's rows read from the one chunk that holds them, not through the hypertable.

A by-trace lookup on the hypertable is planned for its values at every execution (db.custom_plans:
a generic plan over every chunk and its compressed twin took 130-270 ms to build), and that
planning (hypertable expansion, the compressed chunk's paths) was most of what trace detail cost
over plain PostgreSQL's. The same statement on the chunk itself names one table: PostgreSQL keeps
it prepared and its generic plan is cheap to build, so repeated lookups in a chunk skip planning.
Querying a compressed chunk directly decompresses it as the hypertable does (TimescaleDB 2.28.3;
tests/integration/timescaledb/test_trace_chunks.py compares the answers).

`ChunkCatalogue` keeps each hypertable's chunk ranges for `ttl_seconds`, read from TimescaleDB's
catalogue tables (the public `timescaledb_information.chunks` view took about 20 ms, 13 of them
planning; the tables it reads, a fraction of a ms; tests/integration/timescaledb pins the
versions this was checked on). A range is read
from a chunk only when one chunk covers it whole, so rows never lie in another chunk; otherwise
(a range across a chunk boundary, a chunk created since the catalogue was read) the hypertable
statement runs as before. A chunk dropped (or merged away) since is an undefined table; one whose
range changed since (`split_chunk` moves its later rows to a new chunk; `merge_chunks` widens it)
fails the statement's guard, which compares the chunk's range in TimescaleDB's catalogue with the
one read, in the statement's own snapshot: either way the catalogue is forgotten and the
hypertable answers, so a stale catalogue never answers from the wrong chunk. Chunk names come
from the catalogue and are always quoted as identifiers; the values stay bind parameters. Only in
autocommit (the API's read engine): inside a transaction the failed statement would abort it
before the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    CursorResult,
    Select,
    Table,
    TextClause,
    bindparam,
    column,
    exc,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import quoted_name
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.sql.visitors import replacement_traverse

from observatory_api.db.failures import sqlstate

# How long the chunk ranges read from the catalogue are used: a chunk created since (a new day's)
# is read through the hypertable until then.
CATALOGUE_TTL_SECONDS = 10.0
# Chunk statements kept built: (the hypertable statement, the chunk) -> the chunk statement.
_MAX_STATEMENTS = 512
# A chunk gone since the catalogue was read (undefined table), or not readable by this role.
_FALLBACK_STATES = frozenset({"42P01", "42501"})
# The guard of a chunk statement: the text it fails with as an invalid boolean (22P02), and itself.
_RANGE_CHANGED = "observatory: the chunk range changed"
_GUARD = text(
    "(SELECT CAST(CASE WHEN bool_and(ds.range_start = :guard_start AND ds.range_end = :guard_end)"
    " THEN 'true' ELSE 'observatory: the chunk range changed' END AS boolean)"
    " FROM _timescaledb_catalog.dimension_slice ds WHERE ds.chunk_id = :guard_chunk)"
)
# Each chunk of this schema's hypertables with its time range, in TimescaleDB's internal time
# (microseconds since the Unix epoch for timestamptz). Hypertables with one dimension: ours.
_CHUNKS = text(
    "SELECT h.table_name AS hypertable_name, c.id, c.schema_name, c.table_name, ds.range_start, ds.range_end"
    " FROM _timescaledb_catalog.hypertable h"
    " JOIN _timescaledb_catalog.chunk c ON c.hypertable_id = h.id"
    " JOIN _timescaledb_catalog.dimension_slice ds ON ds.chunk_id = c.id"
    " WHERE h.schema_name = current_schema() AND h.num_dimensions = 1"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Fallback = Callable[[AsyncConnection, Select[Any], Mapping[str, Any] | None], Awaitable[CursorResult[Any]]]


@dataclass(frozen=True, slots=True)
class Chunk:
    schema: str
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive
    # TimescaleDB's id of the chunk and its range as the catalogue stores it, for the guard.
    id: int = 0
    internal_range: tuple[int, int] = (0, 0)

    def guard(self) -> TextClause:
        """True while the chunk's range is the one read; else the statement fails (22P02), in
        its own snapshot: the rows it reads are those of that range."""
        start, end = self.internal_range
        return _GUARD.bindparams(
            bindparam("guard_start", start, BigInteger), bindparam("guard_end", end, BigInteger), guard_chunk=self.id
        )


def _chunk(row: Any) -> Chunk | None:
    try:
        start, end = _EPOCH + row.range_start * _MICROSECOND, _EPOCH + row.range_end * _MICROSECOND
    except OverflowError:  # an open-ended range: read through the hypertable
        return None
    return Chunk(row.schema_name, row.table_name, start, end, row.id, (row.range_start, row.range_end))


class ChunkCatalogue:
    """The chunks of this database's hypertables by time range, read at most every `ttl_seconds`."""

    def __init__(self, *, ttl_seconds: float = CATALOGUE_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl_seconds
        self._clock = clock
        self._chunks: dict[str, list[Chunk]] = {}
        self._read_at: float | None = None
        self._statements: dict[tuple[int, str, str], Select[Any]] = {}

    def forget(self) -> None:
        """Read the catalogue again before the next lookup."""
        self._read_at = None

    async def chunk_of(self, conn: AsyncConnection, hypertable: str, low: datetime, high: datetime) -> Chunk | None:
        """The one chunk of `hypertable` whose range covers [low, high], if the catalogue knows one."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl:
            # Unreadable (another TimescaleDB's catalogue, a role without access): no chunks
            # until the next read, so the hypertable answers without a failed read each time.
            self._chunks, self._read_at = {}, now
            found: dict[str, list[Chunk]] = {}
            for row in await conn.execute(_CHUNKS):
                chunk = _chunk(row)
                if chunk is not None:
                    found.setdefault(row.hypertable_name, []).append(chunk)
            self._chunks = found
        for chunk in self._chunks.get(hypertable, ()):
            if chunk.start <= low and high < chunk.end:
                return chunk
        return None

    def statement_in(
        self, statement: Select[Any], hypertable: Table, chunk: Chunk, bounds: tuple[str, str]
    ) -> Select[Any]:
        """`statement` (on `hypertable`) reading `chunk` instead, its time `bounds` (the names of
        its bind parameters) behind sub-selects; built once per chunk."""
        key = (id(statement), chunk.schema, chunk.name)
        found = self._statements.get(key)
        if found is None:
            if len(self._statements) >= _MAX_STATEMENTS:
                self._statements.clear()
            built = replacement_traverse(statement, {}, partial(_behind_select, bounds))
            self._statements[key] = found = statement_on(cast("Select[Any]", built), hypertable, chunk)
        return found


def statement_on(statement: Select[Any], hypertable: Table, chunk: Chunk) -> Select[Any]:
    """`statement` (on `hypertable`) reading `chunk` instead, behind the chunk's guard."""
    target = table(
        quoted_name(chunk.name, quote=True),
        *(column(c.name, c.type) for c in hypertable.c),
        schema=quoted_name(chunk.schema, quote=True),
    )
    # Only the hypertable's own columns: a `NULL AS input` of a redacted role keeps its NULL.
    adapter = ClauseAdapter(
        target, include_fn=lambda e: isinstance(e, Column) and e.table is hypertable, adapt_on_names=True
    )
    return adapter.traverse(statement).where(chunk.guard())


def _behind_select(bounds: tuple[str, str], element: Any) -> Any:
    # `time >= (SELECT $2)`: the planner cannot read the value when it estimates, so a plan for
    # the values costs what the generic plan does and PostgreSQL keeps the generic one after five
    # executions (no planning at all, 0.4-0.6 ms each on a compressed chunk). Written plainly, the
    # values made the custom plan look cheaper and it was planned again every time. At run time
    # the compressed chunk's index on its batches' time range still takes the bounds.
    if isinstance(element, BindParameter) and element.key in bounds:
        return select(element).scalar_subquery()
    return None


async def execute_in_chunk(
    conn: AsyncConnection,
    catalogue: ChunkCatalogue,
    statement: Select[Any],
    parameters: Mapping[str, Any],
    *,
    hypertable: Table,
    bounds: tuple[str, str],
    fallback: Fallback,
) -> CursorResult[Any]:
    """`statement` (rows of `hypertable` between the values of its `bounds` parameters) run on the
    chunk that holds that range, kept prepared; `fallback` runs it on the hypertable when no one
    chunk does, or the chunk is gone or changed."""
    chunk = await chunk_for(conn, catalogue, hypertable, parameters[bounds[0]], parameters[bounds[1]])
    if chunk is None:
        return await fallback(conn, statement, parameters)
    return await execute_on(
        conn, catalogue, statement, catalogue.statement_in(statement, hypertable, chunk, bounds), parameters, fallback
    )


async def chunk_for(
    conn: AsyncConnection, catalogue: ChunkCatalogue, hypertable: Table, low: datetime, high: datetime
) -> Chunk | None:
    """The chunk to read `hypertable`'s rows in [low, high] from; None for the hypertable."""
    raw = await conn.get_raw_connection()
    if not getattr(raw.dbapi_connection, "autocommit", False):
        # In a transaction a failed statement (a chunk dropped) aborts it: no fallback could run.
        # The API's reads run in autocommit (db.engine).
        return None
    try:
        return await catalogue.chunk_of(conn, hypertable.name, low, high)
    except exc.DBAPIError:  # the catalogue unreadable: the hypertable, as on any database
        return None


async def execute_on(
    conn: AsyncConnection,
    catalogue: ChunkCatalogue,
    statement: Select[Any],
    in_chunk: Select[Any],
    parameters: Mapping[str, Any] | None,
    fallback: Fallback,
) -> CursorResult[Any]:
    """`in_chunk` (`statement` on a chunk of `chunk_for`); `statement` by `fallback` when that
    chunk is gone or changed since the catalogue was read (which is then read again)."""
    try:
        result: CursorResult[Any] = await conn.execute(in_chunk, parameters)
        return result
    except exc.DBAPIError as error:
        if not chunk_moved(error):
            raise
        catalogue.forget()
        return await fallback(conn, statement, parameters)


def chunk_moved(error: exc.DBAPIError) -> bool:
    """Whether `error` says the chunk read is gone or no longer holds the range it was read for."""
    state = sqlstate(error.orig)
    return state in _FALLBACK_STATES or (state == "22P02" and _RANGE_CHANGED in str(error.orig))
