"""TraceRepository: trace summaries, a trace's tree of spans and its logs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Column, ColumnElement, CursorResult, Executable, Row, Select, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.core.errors import NotFound
from observatory_api.core.listing import ListPage
from observatory_api.db import tables
from observatory_api.db.custom_plans import execute_custom_planned
from observatory_api.db.filters import compile_trace_filter, page_statement
from observatory_api.db.keyset import Keyset
from observatory_api.db.trace_chunks import ChunkCatalogue, execute_in_chunk
from observatory_api.logs.rows import log_columns, log_from_row
from observatory_api.logs.schemas import LogEntry
from observatory_api.observability.db import timed
from observatory_api.spans.rows import span_columns, span_from_row
from observatory_api.spans.schemas import SpanNode
from observatory_api.traces.schemas import TraceDetail, TracePage, TraceSort, TraceSummary

_t = tables.traces
# A trace's logs are the logs with its id stamped at most this long before its first span starts
# or after its last span ends (clock skew between services, a log's observed time). Every lookup
# of a trace's spans or logs is bounded by the trace's time range: on TimescaleDB an unbounded
# one probes every chunk, compressed ones included, and its speed then depends on the planner's
# statistics. Logs further off are still listed by /api/v1/logs?trace_id=.
TRACE_LOG_MARGIN = timedelta(hours=1)
T = TypeVar("T")
SUMMARY_NAMES = TraceSummary.__struct_fields__
SUMMARY_COLUMNS = [_t.c[name] for name in SUMMARY_NAMES]
_SUMMARY_OF_TRACE = select(*SUMMARY_COLUMNS).where(_t.c.trace_id == bindparam("trace_id"))
_SORT_COLUMNS: dict[str, Column[Any]] = {
    "start_time": _t.c.start_time,
    "duration": _t.c.duration_ms,
    "cost": _t.c.cost_usd,
}


class TraceRepository:
    def __init__(self, engine: AsyncEngine, *, custom_plans: bool = True, chunks: ChunkCatalogue | None = None) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine
        # The by-trace lookups planned for their values every time (db.custom_plans): what
        # TimescaleDB needs (a generic plan over every chunk took 130-270 ms to build). Plain
        # PostgreSQL builds one cheaply and keeps the prepared statement (deps.py turns this off
        # there): re-preparing every fifth execution cost 0.2-0.3 ms of CPU a trace detail.
        self._lookup = execute_custom_planned if custom_plans else _execute
        # On TimescaleDB, a trace detail's lookups read the chunk that holds the trace when one
        # does (db.trace_chunks: kept prepared, no hypertable planning), else the hypertable.
        self._chunks = chunks

    @timed("traces.list_traces")
    async def list_traces(self, page: ListPage, *, sort: TraceSort, allow_content: bool) -> TracePage:
        """One page of trace summaries started in the page's window, matching its filters, in `sort` order."""
        keyset = Keyset.of_page(page, sort=sort, columns=[_SORT_COLUMNS[sort.lstrip("-")], _t.c.trace_id])
        stmt, shape = page_statement(
            keyset,
            page,
            SUMMARY_COLUMNS,
            _t.c.start_time,
            compile_trace_filter,
            allow_content=allow_content,
            name="traces",
        )
        async with self._engine.connect() as conn:
            rows = await keyset.fetch(conn, stmt, shape=shape)
        found, next_cursor, has_more = keyset.page(rows)
        return TracePage(data=[to_summary(row) for row in found], next_cursor=next_cursor, has_more=has_more)

    @timed("traces.get_trace")
    async def get_trace(self, trace_id: str, *, allow_content: bool) -> TraceDetail:
        """The summary, the spans as a tree and the logs of one trace; NotFound when absent.

        Without `allow_content`, span and log content is left out (core.content).
        """
        async with self._engine.connect() as conn:
            found = (await conn.execute(_SUMMARY_OF_TRACE, {"trace_id": trace_id})).first()
            if found is None:
                raise NotFound(f"no trace with id {trace_id}")
            values = summary_values(found)
            start, end = values["start_time"], values["end_time"]
            span_rows = (await self._of_trace(conn, _SPANS, trace_id, start, end, allow_content)).all()
            log_rows = (await self._of_trace(conn, _LOGS, trace_id, start, end, allow_content)).all()
        return TraceDetail(
            **values,
            spans=build_span_tree(
                [span_from_row(row, allow_content=allow_content, make=SpanNode) for row in span_rows]
            ),
            logs=[log_from_row(row, allow_content=allow_content) for row in log_rows],
        )

    async def _of_trace(
        self,
        conn: AsyncConnection,
        rows: _TraceRows,
        trace_id: str,
        start: datetime,
        end: datetime,
        allow_content: bool,
    ) -> CursorResult[Any]:
        """The `rows` of one trace: from its chunk when one holds it (db.trace_chunks), else from
        the hypertable planned for this trace's values every time (db.custom_plans: no generic
        plan spike)."""
        statement, parameters = rows.of(trace_id, start, end, allow_content=allow_content)
        if self._chunks is None:
            return await self._lookup(conn, statement, parameters)
        time = rows.order[0]
        return await execute_in_chunk(
            conn,
            self._chunks,
            statement,
            parameters,
            hypertable=time.table,
            bounds=("trace_from", "trace_to"),
            fallback=self._lookup,
        )

    @timed("traces.get_summaries")
    async def get_summaries(self, trace_ids: Sequence[str]) -> dict[str, TraceSummary]:
        """The summaries of the traces that exist among `trace_ids`, by id (one statement)."""
        if not trace_ids:
            return {}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(*SUMMARY_COLUMNS).where(_t.c.trace_id.in_(set(trace_ids))))).all()
        return {row.trace_id: to_summary(row) for row in rows}

    @timed("traces.spans_of_traces")
    async def spans_of_traces(self, trace_ids: Sequence[str], *, allow_content: bool) -> dict[str, list[SpanNode]]:
        """Every span of each trace (flat, in start order), by trace id, in two statements."""
        convert = partial(span_from_row, allow_content=allow_content, make=SpanNode)
        return await self._by_trace(_SPANS, trace_ids, convert, allow_content=allow_content)

    @timed("traces.logs_of_traces")
    async def logs_of_traces(self, trace_ids: Sequence[str], *, allow_content: bool) -> dict[str, list[LogEntry]]:
        """The logs of each trace, in time order, by trace id, in two statements."""
        convert = partial(log_from_row, allow_content=allow_content)
        return await self._by_trace(_LOGS, trace_ids, convert, allow_content=allow_content)

    async def _by_trace(
        self, rows: _TraceRows, trace_ids: Sequence[str], convert: Callable[[Row[Any]], T], *, allow_content: bool
    ) -> dict[str, list[T]]:
        """The `rows` of each of `trace_ids`, in their order, each made by `convert`, grouped by
        trace id (each id present).

        Two statements: the traces' ranges, then the rows within them as literal bounds.
        TimescaleDB excludes chunks at planning by literal bounds only; bounds from a join or a
        subquery left every chunk written to after its compression in the plan. Read by chunk
        (db.trace_chunks) this was no faster: 1.04-1.24x the hypertable's time in-process for 25
        traces (bench/RESULTS.md, "Trace detail: a guard on the chunk, logs read aside").
        """
        found: dict[str, list[T]] = {trace_id: [] for trace_id in trace_ids}
        if not trace_ids:
            return found
        time, margin = rows.order[0], rows.margin
        ids = set(trace_ids)
        table = time.table
        ranges_stmt = select(_t.c.trace_id, _t.c.start_time, _t.c.end_time).where(_t.c.trace_id.in_(ids))
        async with self._engine.connect() as conn:
            ranges = {
                row.trace_id: (row.start_time - margin, row.end_time + margin)
                for row in await conn.execute(ranges_stmt)
            }
            if not ranges:
                return found
            within = or_(*(and_(time >= low, time <= high) for low, high in merged(ranges.values())))
            stmt = rows.select(allow_content=allow_content).where(table.c.trace_id.in_(set(ranges)), within)
            read = (await self._lookup(conn, stmt.order_by(*rows.order))).all()
        for row in read:
            low, high = ranges[row.trace_id]
            if low <= getattr(row, time.name) <= high:  # a window merged from several traces' ranges
                found[row.trace_id].append(convert(row))
        return found


async def _execute(
    conn: AsyncConnection, statement: Executable, parameters: Mapping[str, Any] | None = None
) -> CursorResult[Any]:
    return await conn.execute(statement, parameters)


def merged(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """`ranges` with the overlapping or nearly adjacent ones (under a minute apart) joined."""
    windows: list[tuple[datetime, datetime]] = []
    for low, high in sorted(ranges):
        if windows and low <= windows[-1][1] + timedelta(minutes=1):
            windows[-1] = (windows[-1][0], max(windows[-1][1], high))
        else:
            windows.append((low, high))
    return windows


@dataclass(frozen=True, slots=True)
class _TraceRows:
    """The rows of a trace in one table: its columns for a role, and its order, time first, whose
    value lies within the trace's time range widened by `margin` on either side."""

    columns: Callable[..., list[ColumnElement[Any]]]
    order: tuple[Column[Any], Column[Any]]
    margin: timedelta = timedelta(0)
    # The statement of `of` for each role, built once: its values are bound at execution.
    _of_trace: dict[bool, Select[Any]] = field(default_factory=dict, compare=False)

    def select(self, *, allow_content: bool) -> Select[Any]:
        return select(*self.columns(allow_content=allow_content))

    def of(
        self, trace_id: str, start: datetime, end: datetime, *, allow_content: bool
    ) -> tuple[Select[Any], dict[str, Any]]:
        """The rows of one trace that started at `start` and ended at `end`, and the statement's
        values: time bounds let PostgreSQL (and TimescaleDB chunk exclusion) skip everything
        outside the trace."""
        stmt = self._of_trace.get(allow_content)
        if stmt is None:
            time = self.order[0]
            stmt = (
                self.select(allow_content=allow_content)
                .where(
                    time.table.c.trace_id == bindparam("trace_id"),
                    time >= bindparam("trace_from"),
                    time <= bindparam("trace_to"),
                )
                .order_by(*self.order)
            )
            self._of_trace[allow_content] = stmt
        return stmt, {"trace_id": trace_id, "trace_from": start - self.margin, "trace_to": end + self.margin}


_SPANS = _TraceRows(span_columns, (tables.spans.c.start_time, tables.spans.c.span_id))
_LOGS = _TraceRows(log_columns, (tables.logs.c.time, tables.logs.c.log_id), TRACE_LOG_MARGIN)


def build_span_tree(spans: Sequence[SpanNode]) -> list[SpanNode]:
    """Nest children under their parents; spans whose parent is missing become roots."""
    by_id = {span.span_id: span for span in spans}
    roots: list[SpanNode] = []
    for span in spans:
        parent = by_id.get(span.parent_span_id) if span.parent_span_id else None
        if parent is None or parent is span:
            roots.append(span)
        else:
            parent.children.append(span)
    return roots


def summary_values(row: Any) -> dict[str, Any]:
    """A row of SUMMARY_COLUMNS as TraceSummary's fields (zipped: cheaper than `row._mapping`)."""
    return dict(zip(SUMMARY_NAMES, row, strict=True))


def to_summary(row: Any) -> TraceSummary:
    return TraceSummary(**summary_values(row))
