"""TimescaleDB: a trace's rows read from the one chunk that holds them, not through the hypertable.

A by-trace lookup on the hypertable is planned for its values at every execution (db.custom_plans:
a generic plan over every chunk and its compressed twin took 130-270 ms to build), and that
planning (hypertable expansion, the compressed chunk's paths) was most of what trace detail cost
over plain PostgreSQL's. The same statement on the chunk itself names one table: PostgreSQL keeps
it prepared and its generic plan is cheap to build, so repeated lookups in a chunk skip planning.
Querying a compressed chunk directly decompresses it as the hypertable does (TimescaleDB 2.28.3;
tests/integration/timescaledb/test_trace_chunks.py compares the answers).

`ChunkCatalogue` keeps each hypertable's chunk ranges for `ttl_seconds`, read from the public
`timescaledb_information.chunks` view (about 20 ms, too slow for every request). A range is read
from a chunk only when one chunk covers it whole, so rows never lie in another chunk; otherwise
(a range across a chunk boundary, a chunk created since the catalogue was read) the hypertable
statement runs as before. A chunk dropped (or merged away) since is an undefined table: the
catalogue is forgotten and the hypertable answers. Chunk names come from the catalogue and are
always quoted as identifiers; the values stay bind parameters. Only in autocommit (the API's read
engine): inside a transaction the failed statement would abort it before the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import BindParameter, Column, CursorResult, Select, Table, column, exc, select, table, text
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
_CHUNKS = text(
    "SELECT hypertable_name, chunk_schema, chunk_name, range_start, range_end"
    " FROM timescaledb_information.chunks"
    " WHERE hypertable_schema = current_schema() AND range_start IS NOT NULL"
)

Fallback = Callable[[AsyncConnection, Select[Any], Mapping[str, Any]], Awaitable[CursorResult[Any]]]


@dataclass(frozen=True, slots=True)
class Chunk:
    schema: str
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive


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
            found: dict[str, list[Chunk]] = {}
            for row in await conn.execute(_CHUNKS):
                found.setdefault(row.hypertable_name, []).append(
                    Chunk(row.chunk_schema, row.chunk_name, row.range_start, row.range_end)
                )
            self._chunks, self._read_at = found, now
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
            target = table(
                quoted_name(chunk.name, quote=True),
                *(column(c.name, c.type) for c in hypertable.c),
                schema=quoted_name(chunk.schema, quote=True),
            )
            # Only the hypertable's own columns: a `NULL AS input` of a redacted role keeps its NULL.
            adapter = ClauseAdapter(
                target, include_fn=lambda e: isinstance(e, Column) and e.table is hypertable, adapt_on_names=True
            )
            built = replacement_traverse(adapter.traverse(statement), {}, partial(_behind_select, bounds))
            self._statements[key] = found = cast("Select[Any]", built)
        return found


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
    chunk does, or the chunk is gone."""
    low, high = parameters[bounds[0]], parameters[bounds[1]]
    raw = await conn.get_raw_connection()
    if not getattr(raw.dbapi_connection, "autocommit", False):
        # In a transaction a failed statement (a chunk dropped) aborts it: no fallback could run.
        # The API's reads run in autocommit (db.engine).
        return await fallback(conn, statement, parameters)
    try:
        chunk = await catalogue.chunk_of(conn, hypertable.name, low, high)
    except exc.DBAPIError:  # the catalogue view unreadable: the hypertable, as on any database
        catalogue.forget()
        return await fallback(conn, statement, parameters)
    if chunk is None:
        return await fallback(conn, statement, parameters)
    try:
        result: CursorResult[Any] = await conn.execute(
            catalogue.statement_in(statement, hypertable, chunk, bounds), parameters
        )
        return result
    except exc.DBAPIError as error:
        if sqlstate(error.orig) not in _FALLBACK_STATES:
            raise
        catalogue.forget()
        return await fallback(conn, statement, parameters)
