"""TelemetryWriter: stores spans and logs idempotently, and keeps the summaries in step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.db.bulk_insert import insert_ignoring_duplicates, insert_new_rows
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.failures import blocks_every_batch
from observatory_api.db.tables import logs, spans
from observatory_api.db.write_sql import analyze_tables, estimated_rows, lock_summaries, prepare_write_transaction
from observatory_api.metrics.rollup_tables import ROLLUPS
from observatory_api.metrics.rollups import Contribution, add_to_rollups, contribution, move_in_rollups
from observatory_api.storage.context import (
    CONTEXT_COLUMNS,
    NOTHING_INHERITED,
    Inherited,
    NewSpan,
    inherit_across_writes,
    inherit_in_batch,
    stored_rows,
)
from observatory_api.storage.costs import CostFiller
from observatory_api.storage.group_commit import GroupCommit
from observatory_api.storage.session_changes import TraceTotals, session_changes
from observatory_api.storage.span_identity import SpanId, stored_starts
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
_SPAN_ID, _START_TIME = _SPAN_COLUMNS.index("span_id"), _SPAN_COLUMNS.index("start_time")
_PARENT_SPAN_ID = _SPAN_COLUMNS.index("parent_span_id")
_ENVIRONMENT = _SPAN_COLUMNS.index("environment")
_CONTEXT_AT = tuple(_SPAN_COLUMNS.index(name) for name in CONTEXT_COLUMNS)
# Ids per IN (...) list: well under the bound-parameter limits of SQLite and asyncpg (32766).
_IDS_PER_STATEMENT = 1000
# Spans per group transaction: concurrent OTLP batches (512 spans by default) are merged up to this.
GROUP_MAX_SPANS = 8192

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class SpanWrite:
    """What a `store_spans` call did: the spans newly stored, and the spans refused because a span
    of the same (trace_id, span_id) is stored (or came first) with another start time."""

    stored: int
    conflicts: list[SpanKey]


@dataclass(frozen=True, slots=True)
class _SpanBatch:
    """A caller's spans made ready before the write transaction: priced, each key once, as rows
    of `spans` and as rollup contributions (CPU work kept out of the group's transaction); and
    the spans refused already, whose id came earlier in the batch with another start time."""

    keys: list[SpanKey]
    rows: list[tuple[Any, ...]]
    contributions: list[Contribution]
    conflicts: list[SpanKey]


class TelemetryWriter:
    """Writes batches of records through an engine with write rights.

    The span batches of concurrent callers are merged into one transaction (group commit, see
    `storage.group_commit`); each caller returns once its rows are committed. A transaction
    stores the rows and the summaries and rollups they change together, or nothing. Rows whose
    primary key is already stored are skipped, so a retried batch is safe; a span whose
    (trace_id, span_id) is stored at another start time is refused (`SpanWrite.conflicts`) and
    nothing stored changes, on every backend (the primary key holds the start time, as a
    TimescaleDB hypertable's unique indexes must, so this is checked under the trace's lock
    rather than by an index). When the engine's
    dialect is marked as having the continuous aggregates (TimescaleDB), the database maintains
    the metric rollups itself and the writer leaves the rollup tables alone.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        capabilities: DatabaseCapabilities | None = None,
        group_max_spans: int = GROUP_MAX_SPANS,
        first_analyze: int = _FIRST_ANALYZE,
        on_stored: Callable[[datetime, datetime], None] | None = None,
    ) -> None:
        self._engine = engine
        # Without them, what the dialect alone says: the rollup tables are written (the server and
        # `seed` pass what they detected, continuous aggregates included).
        self._capabilities = capabilities or DatabaseCapabilities.plain(engine)
        # Told the first and last start time of the spans each commit stored or moved (the
        # metric segment cache drops what they touch), after the commit and before returning.
        self._on_stored = on_stored
        self._costs = CostFiller()
        self._stored_spans = 0
        self._first_analyze = first_analyze
        self._analyze_at: int | None = None  # known at the first write
        # A timeout or a lost connection is no batch's fault: retrying each alone would meet it again.
        self._spans = GroupCommit[_SpanBatch, SpanWrite](
            self._write_span_group, max_items=group_max_spans, retry_alone=lambda error: not blocks_every_batch(error)
        )

    async def write_spans(self, records: Sequence[SpanRecord]) -> int:
        """As `store_spans`; returns the spans newly stored."""
        return (await self.store_spans(records)).stored

    async def store_spans(self, records: Sequence[SpanRecord]) -> SpanWrite:
        """Store `records`, refresh their traces and sessions; returns what was stored and refused.

        Every span gets its canonical model and a cost with its source (`storage.costs`); the
        spans newly stored are added to the metric rollups in the same transaction (unless TimescaleDB maintains them).
        """
        if not records:
            return SpanWrite(0, [])
        batch = await self._prepare(records)
        written = await self._spans.submit(batch, size=len(batch.rows))
        try:
            await self._analyze_as_tables_grow(written.stored)
        except Exception:  # the spans are committed: a failed ANALYZE must not report them lost
            logger.warning("ANALYZE after a write failed; planner statistics may lag", exc_info=True)
        return written

    async def _prepare(self, records: Sequence[SpanRecord]) -> _SpanBatch:
        unique: dict[SpanKey, SpanRecord] = {}
        started: dict[SpanId, datetime] = {}
        conflicts: list[SpanKey] = []
        for record in records:
            if record.start_time.tzinfo is None or record.end_time.tzinfo is None:
                raise ValueError("naive datetime: timestamps must carry a timezone")
            key = _key(record)
            if started.setdefault(key[:2], key[2]) != key[2]:
                conflicts.append(key)  # the same span id at another time: the first one is kept
                continue
            unique.setdefault(key, record)  # a repeated span: the first one is stored
        # The price history is cached by the filler; a connection is needed only to reload it.
        if self._costs.needs_history(list(unique.values())):
            async with self._engine.connect() as conn:
                priced = await self._costs.fill(conn, list(unique.values()))
        else:
            priced = await self._costs.fill(None, list(unique.values()))
        # CPU work in a thread: the event loop goes on driving the group transaction in progress.
        return await asyncio.to_thread(_span_batch, priced, conflicts)

    async def _write_span_group(self, batches: Sequence[_SpanBatch]) -> list[SpanWrite]:
        """One transaction for `batches`; returns what each batch newly stored and had refused."""
        # A key repeated across batches (a retry racing its original) is written and counted once:
        # the rollups add contributions themselves, so a repeat must not reach them. A span id
        # repeated at another start time is refused in the later batch.
        owner: dict[SpanKey, int] = {}
        started: dict[SpanId, datetime] = {}
        conflicts = [list(batch.conflicts) for batch in batches]
        rows: list[tuple[Any, ...]] = []
        parts: list[Contribution] = []
        for index, batch in enumerate(batches):
            for key, row, part in zip(batch.keys, batch.rows, batch.contributions, strict=True):
                if key in owner:
                    continue
                if started.setdefault(key[:2], key[2]) != key[2]:
                    conflicts[index].append(key)
                    continue
                owner[key] = index
                rows.append(row)
                parts.append(part)
        keys = list(owner)
        async with self._engine.begin() as conn:
            await prepare_write_transaction(conn)
            # The traces' locks first: the check below and the insert then see every span of
            # these traces that a concurrent writer committed (SQLite: one writer at a time).
            trace_ids = sorted({key[0] for key in keys})
            await lock_summaries(conn, "traces", trace_ids)
            before = await _stored_totals(conn, trace_ids)
            kept = await _without_conflicts(conn, keys, before)
            for i in sorted(set(range(len(keys))) - set(kept)):
                conflicts[owner[keys[i]]].append(keys[i])
            new_keys = set(await insert_new_rows(conn, spans, [rows[i] for i in kept], key=_SPAN_KEY))
            # Only traces with a new span can have changed: a pure retry skips everything below.
            new = [i for i in kept if keys[i] in new_keys]
            if new:
                new_rows = [rows[i] for i in new]
                # Traces whose new spans came from several batches: each batch inherited alone.
                batches_of: dict[str, set[int]] = {}
                for i in new:
                    batches_of.setdefault(rows[i][_TRACE_ID], set()).add(owner[keys[i]])
                spread = {trace_id for trace_id, indexes in batches_of.items() if len(indexes) > 1}
                inherited = await self._refresh_summaries(conn, new_rows, before, spread)
                # Last: the rollup rows other writers also add to stay locked only until commit.
                # On TimescaleDB the continuous aggregates follow `spans` without them.
                if not self._capabilities.continuous_aggregates:
                    new_parts = [parts[i] for i in new]
                    if inherited.changed:
                        new_parts = [
                            contribution(row) if _key_of(row) in inherited.changed else part
                            for row, part in zip(new_rows, new_parts, strict=True)
                        ]
                    await add_to_rollups(conn, new_parts)
                    await _move_stored_spans_in_rollups(conn, inherited)
        if new and self._on_stored is not None:
            touched = [rows[i][_START_TIME] for i in new] + [key[2] for key in inherited.before]
            self._on_stored(min(touched), max(touched))
        stored = [0] * len(batches)
        for i in new:
            stored[owner[keys[i]]] += 1
        return [SpanWrite(count, refused) for count, refused in zip(stored, conflicts, strict=True)]

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
        if self._capabilities.continuous_aggregates:  # the rollup tables no longer grow
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

    async def _refresh_summaries(
        self,
        conn: AsyncConnection,
        new_rows: list[tuple[Any, ...]],
        stored: dict[str, TraceTotals],
        spread: set[str],
    ) -> Inherited:
        """Refresh the summaries of the traces of `new_rows` (patched in place with what they
        inherit from spans stored before); returns what the spans inherited. `stored`: the
        summaries read (under their locks) before `new_rows` were inserted."""
        dialect_name = conn.dialect.name
        trace_ids = sorted({row[_TRACE_ID] for row in new_rows})
        before = {trace_id: stored[trace_id] for trace_id in trace_ids if trace_id in stored}
        inherited = await _inherit_across_writes(conn, new_rows, before, spread)
        # A trace's session is one its spans name, or the one its summary had before: a trace
        # that moved to another session must leave the old one's totals too.
        session_ids = {row[_SESSION_ID] for row in new_rows if row[_SESSION_ID] is not None}
        session_ids.update(totals.session_id for totals in before.values() if totals.session_id is not None)
        session_ids.update(context[1] for context in inherited.changed.values() if context[1] is not None)
        await lock_summaries(conn, "sessions", sorted(session_ids))
        after: list[TraceTotals] = []
        for chunk in _chunks(trace_ids, _IDS_PER_STATEMENT):
            after += [TraceTotals(*row) for row in await conn.execute(refresh_traces(dialect_name), {IDS: list(chunk)})]
        changes = session_changes(before, after)
        await add_session_changes(conn, changes.added)
        for chunk in _chunks(changes.recompute, _IDS_PER_STATEMENT):
            await conn.execute(refresh_sessions(dialect_name), {IDS: list(chunk)})
            await conn.execute(delete_empty_sessions(dialect_name), {IDS: list(chunk)})
        return inherited


async def _inherit_across_writes(
    conn: AsyncConnection, new_rows: list[tuple[Any, ...]], before: dict[str, TraceTotals], spread: set[str]
) -> Inherited:
    """Context down the tree across writes (`storage.context`), for the traces that had spans
    stored before (`before`) or whose new spans came from several batches (`spread`); the
    inherited values are patched into `new_rows` too."""
    traces = {row[_TRACE_ID] for row in new_rows if row[_TRACE_ID] in before or row[_TRACE_ID] in spread}
    if not traces:
        return NOTHING_INHERITED
    new = [
        NewSpan(_key_of(row), row[_PARENT_SPAN_ID], tuple(row[at] for at in _CONTEXT_AT))
        for row in new_rows
        if row[_TRACE_ID] in traces
    ]
    stored_traces = {trace_id: before[trace_id].context_bits for trace_id in traces & before.keys()}
    starts = [span.key[2] for span in new]
    low = min([*starts, *(before[t].start_time for t in stored_traces)])
    high = max([*starts, *(before[t].end_time for t in stored_traces)])
    inherited = await inherit_across_writes(conn, new, stored_traces=stored_traces, low=low, high=high)
    if inherited.changed:
        for index, row in enumerate(new_rows):
            context = inherited.changed.get(_key_of(row))
            if context is not None:
                patched = list(row)
                for at, value in zip(_CONTEXT_AT, context, strict=True):
                    patched[at] = value
                new_rows[index] = tuple(patched)
    return inherited


async def _move_stored_spans_in_rollups(conn: AsyncConnection, inherited: Inherited) -> None:
    """Spans stored before that inherited an environment leave the rollup rows of their old one."""
    moved = [key for key, old in inherited.before.items() if old[2] != inherited.changed[key][2]]
    if not moved:
        return
    rows = await stored_rows(conn, moved)
    removed = []
    for row in rows:
        old = list(row)
        old[_ENVIRONMENT] = inherited.before[_key_of(row)][2]
        removed.append(contribution(old))
    await move_in_rollups(conn, removed=removed, added=[contribution(row) for row in rows])


def _key_of(row: Sequence[Any]) -> SpanKey:
    return row[_TRACE_ID], row[_SPAN_ID], row[_START_TIME]


async def _stored_totals(conn: AsyncConnection, trace_ids: Sequence[str]) -> dict[str, TraceTotals]:
    found: dict[str, TraceTotals] = {}
    for chunk in _chunks(trace_ids, _IDS_PER_STATEMENT):
        for row in await conn.execute(trace_totals(conn.dialect.name), {IDS: list(chunk)}):
            found[row.trace_id] = TraceTotals(*row)
    return found


async def _without_conflicts(
    conn: AsyncConnection, keys: Sequence[SpanKey], before: dict[str, TraceTotals]
) -> list[int]:
    """The indexes of `keys` whose span id is not stored at another start time.

    Only a trace with a summary can hold spans (the summary is written with them), and none of
    them starts before the summary's start: a batch of new traces, the common case, costs nothing.
    """
    known = [key[:2] for key in keys if key[0] in before]
    if not known:
        return list(range(len(keys)))
    since = min(before[trace_id].start_time for trace_id, _ in known)
    stored = await stored_starts(conn, known, since=since)
    return [i for i, key in enumerate(keys) if stored.get(key[:2], key[2]) == key[2]]


def _span_batch(records: Sequence[SpanRecord], conflicts: list[SpanKey]) -> _SpanBatch:
    records = inherit_in_batch(records)
    rows = [msgspec.structs.astuple(record) for record in records]
    return _SpanBatch([_key(record) for record in records], rows, [contribution(row) for row in rows], conflicts)


def _key(record: SpanRecord) -> SpanKey:
    return record.trace_id, record.span_id, record.start_time
