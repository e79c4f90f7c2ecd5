"""TelemetryWriter: stores spans and logs idempotently, and keeps the summaries in step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.db.dialect import (
    analyze_tables,
    estimated_rows,
    insert_ignoring_duplicates,
    insert_new_rows,
    lock_summaries,
    prepare_write_transaction,
)
from observatory_api.db.failures import blocks_every_batch
from observatory_api.db.tables import logs, spans
from observatory_api.metrics.continuous_aggregates import has_continuous_aggregates
from observatory_api.metrics.rollup_tables import ROLLUPS
from observatory_api.metrics.rollups import Contribution, add_to_rollups, contribution
from observatory_api.storage.costs import CostFiller
from observatory_api.storage.group_commit import GroupCommit
from observatory_api.storage.records import LogRecord, SpanRecord
from observatory_api.storage.session_changes import TraceTotals, session_changes
from observatory_api.storage.summaries import (
    IDS,
    add_session_changes,
    delete_empty_sessions,
    refresh_sessions,
    refresh_traces,
    trace_totals,
)

logger = logging.getLogger("observatory_api.storage.writer")

_FIRST_ANALYZE = 20_000
# Table -> the columns to analyse (all when empty). Of the ~370 rollup columns only the key and
# the dimensions are ever filtered on: the rest (measures, histogram bins) made ANALYZE ~1 s.
_ANALYZED_TABLES: dict[str, tuple[str, ...]] = {
    "spans": (),
    "traces": (),
    "sessions": (),
    **{rollup.table.name: ("bucket", "dims_key", *rollup.dimension_columns) for rollup in ROLLUPS},
}
_ROLLUP_TABLE_NAMES = {rollup.table.name for rollup in ROLLUPS}
_SPAN_KEY = ("trace_id", "span_id", "start_time")  # the primary key of spans
SpanKey = tuple[str, str, datetime]
_SPAN_COLUMNS = [column.name for column in spans.columns]
_TRACE_ID, _SESSION_ID = _SPAN_COLUMNS.index("trace_id"), _SPAN_COLUMNS.index("session_id")
# Ids per IN (...) list: well under the bound-parameter limits of SQLite and asyncpg (32766).
_IDS_PER_STATEMENT = 1000
# Spans per group transaction: concurrent OTLP batches (512 spans by default) are merged up to this.
GROUP_MAX_SPANS = 8192

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class _SpanBatch:
    """A caller's spans made ready before the write transaction: priced, each key once, as rows
    of `spans` and as rollup contributions (CPU work kept out of the group's transaction)."""

    keys: list[SpanKey]
    rows: list[tuple[Any, ...]]
    contributions: list[Contribution]


class TelemetryWriter:
    """Writes batches of records through an engine with write rights.

    The span batches of concurrent callers are merged into one transaction (group commit, see
    `storage.group_commit`); each caller returns once its rows are committed. A transaction
    stores the rows and the summaries and rollups they change together, or nothing. Rows whose
    primary key is already stored are skipped, so a retried batch is safe. When the engine's
    dialect is marked as having the continuous aggregates (TimescaleDB), the database maintains
    the metric rollups itself and the writer leaves the rollup tables alone.
    """

    def __init__(
        self, engine: AsyncEngine, *, group_max_spans: int = GROUP_MAX_SPANS, first_analyze: int = _FIRST_ANALYZE
    ) -> None:
        self._engine = engine
        self._costs = CostFiller()
        self._stored_spans = 0
        self._first_analyze = first_analyze
        self._analyze_at: int | None = None  # known at the first write
        # A timeout or a lost connection is no batch's fault: retrying each alone would meet it again.
        self._spans = GroupCommit[_SpanBatch](
            self._write_span_group, max_items=group_max_spans, retry_alone=lambda error: not blocks_every_batch(error)
        )

    async def write_spans(self, records: Sequence[SpanRecord]) -> int:
        """Store `records`, refresh their traces and sessions; returns the spans newly stored.

        Every span gets its canonical model and a cost with its source (`storage.costs`); the
        spans newly stored are added to the metric rollups in the same transaction (unless TimescaleDB maintains them).
        """
        if not records:
            return 0
        batch = await self._prepare(records)
        stored = await self._spans.submit(batch, size=len(batch.rows))
        try:
            await self._analyze_as_tables_grow(stored)
        except Exception:  # the spans are committed: a failed ANALYZE must not report them lost
            logger.warning("ANALYZE after a write failed; planner statistics may lag", exc_info=True)
        return stored

    async def _prepare(self, records: Sequence[SpanRecord]) -> _SpanBatch:
        unique: dict[SpanKey, SpanRecord] = {}
        for record in records:
            if record.start_time.tzinfo is None or record.end_time.tzinfo is None:
                raise ValueError("naive datetime: timestamps must carry a timezone")
            unique.setdefault(_key(record), record)  # a repeated span: the first one is stored
        # The price history is cached by the filler; a connection is needed only to reload it.
        if self._costs.needs_history(list(unique.values())):
            async with self._engine.connect() as conn:
                priced = await self._costs.fill(conn, list(unique.values()))
        else:
            priced = await self._costs.fill(None, list(unique.values()))
        # CPU work in a thread: the event loop goes on driving the group transaction in progress.
        return await asyncio.to_thread(_span_batch, priced)

    async def _write_span_group(self, batches: Sequence[_SpanBatch]) -> list[int]:
        """One transaction for `batches`; returns the spans each batch newly stored."""
        # A key repeated across batches (a retry racing its original) is written and counted once:
        # the rollups add contributions themselves, so a repeat must not reach them.
        owner: dict[SpanKey, int] = {}
        rows: list[tuple[Any, ...]] = []
        parts: list[Contribution] = []
        for index, batch in enumerate(batches):
            for key, row, part in zip(batch.keys, batch.rows, batch.contributions, strict=True):
                if key not in owner:
                    owner[key] = index
                    rows.append(row)
                    parts.append(part)
        keys = list(owner)
        async with self._engine.begin() as conn:
            await prepare_write_transaction(conn)
            new_keys = set(await insert_new_rows(conn, spans, rows, key=_SPAN_KEY))
            # Only traces with a new span can have changed: a pure retry skips everything below.
            new = [i for i, key in enumerate(keys) if key in new_keys]
            if new:
                await self._refresh_summaries(conn, [rows[i] for i in new])
                # Last: the rollup rows other writers also add to stay locked only until commit.
                # On TimescaleDB the continuous aggregates follow `spans` without them.
                if not has_continuous_aggregates(conn.dialect):
                    await add_to_rollups(conn, [parts[i] for i in new])
        stored = [0] * len(batches)
        for i in new:
            stored[owner[keys[i]]] += 1
        return stored

    async def _analyze_as_tables_grow(self, stored: int) -> None:
        # Planner statistics must follow tables that grow fast (a bulk load, or a server without
        # autovacuum): stale ones made the summary refresh scan and JIT-compile for ~1 s a batch.
        # The first ANALYZE comes once this writer has stored as many spans as the table held when
        # it started (at least 20,000), then at each doubling of what it stored: O(log n) in all. A
        # server started on ten million spans no longer ANALYZEs them after its first 20,000 (its
        # workers did so at once and waited on each other; autovacuum keeps such a table analysed).
        if self._analyze_at is None:
            async with self._engine.connect() as conn:
                found = await estimated_rows(conn, spans.name)
            if self._analyze_at is None:  # a concurrent first write may have set it meanwhile
                self._analyze_at = max(self._first_analyze, found)
        self._stored_spans += stored
        if self._stored_spans < self._analyze_at:
            return
        self._analyze_at = self._stored_spans * 2
        tables = _ANALYZED_TABLES
        if has_continuous_aggregates(self._engine.dialect):  # the rollup tables no longer grow
            tables = {name: columns for name, columns in tables.items() if name not in _ROLLUP_TABLE_NAMES}
        async with self._engine.begin() as conn:
            await analyze_tables(conn, tables)

    async def write_logs(self, records: Sequence[LogRecord]) -> int:
        """Store `records`; returns the log lines newly stored."""
        if not records:
            return 0
        rows = [msgspec.structs.astuple(record) for record in records]
        async with self._engine.begin() as conn:
            return await insert_ignoring_duplicates(conn, logs, rows)

    async def _refresh_summaries(self, conn: AsyncConnection, new_rows: Sequence[tuple[Any, ...]]) -> None:
        dialect_name = conn.dialect.name
        trace_ids = sorted({row[_TRACE_ID] for row in new_rows})
        await lock_summaries(conn, "traces", trace_ids)
        before: dict[str, TraceTotals] = {}
        for chunk in _chunks(trace_ids, _IDS_PER_STATEMENT):
            for row in await conn.execute(trace_totals(dialect_name), {IDS: list(chunk)}):
                before[row.trace_id] = TraceTotals(*row)
        # A trace's session is one its spans name, or the one its summary had before: a trace
        # that moved to another session must leave the old one's totals too.
        session_ids = {row[_SESSION_ID] for row in new_rows if row[_SESSION_ID] is not None}
        session_ids.update(totals.session_id for totals in before.values() if totals.session_id is not None)
        await lock_summaries(conn, "sessions", sorted(session_ids))
        after: list[TraceTotals] = []
        for chunk in _chunks(trace_ids, _IDS_PER_STATEMENT):
            after += [TraceTotals(*row) for row in await conn.execute(refresh_traces(dialect_name), {IDS: list(chunk)})]
        changes = session_changes(before, after)
        await add_session_changes(conn, changes.added)
        for chunk in _chunks(changes.recompute, _IDS_PER_STATEMENT):
            await conn.execute(refresh_sessions(dialect_name), {IDS: list(chunk)})
            await conn.execute(delete_empty_sessions(dialect_name), {IDS: list(chunk)})


def _span_batch(records: Sequence[SpanRecord]) -> _SpanBatch:
    rows = [msgspec.structs.astuple(record) for record in records]
    return _SpanBatch([_key(record) for record in records], rows, [contribution(row) for row in rows])


def _key(record: SpanRecord) -> SpanKey:
    return record.trace_id, record.span_id, record.start_time
