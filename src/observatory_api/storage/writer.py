"""TelemetryWriter: stores spans and logs idempotently, and keeps the summaries in step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.core.records import LogRecord, SpanRecord
from observatory_api.db.bulk_insert import insert_ignoring_duplicates, insert_new_rows
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.failures import blocks_every_batch
from observatory_api.db.tables import logs, spans
from observatory_api.db.write_sql import (
    analyze_tables,
    estimated_rows,
    lock_summaries,
    lock_write_order,
    prepare_write_transaction,
)
from observatory_api.metrics.rollup_tables import ROLLUPS
from observatory_api.metrics.rollups import Contribution, add_to_rollups, contribution
from observatory_api.storage.context import NOTHING_INHERITED, Inherited, inherit_in_batch
from observatory_api.storage.costs import CostFiller
from observatory_api.storage.group_commit import GroupCommit
from observatory_api.storage.session_changes import TraceTotals, session_changes
from observatory_api.storage.span_group import (
    IDS_PER_STATEMENT,
    SESSION_ID,
    SPAN_COLUMNS,
    START_TIME,
    TRACE_ID,
    Replay,
    SpanGroup,
    chunks,
    inherit_from_stored,
    key_of,
    move_stored_spans_in_rollups,
    moves_environment,
    new_ids_stored_elsewhere,
    stored_totals,
    without_conflicts,
)
from observatory_api.storage.span_identity import SpanId, SpanKey
from observatory_api.storage.summaries import (
    IDS,
    add_session_changes,
    delete_empty_sessions,
    refresh_sessions,
    refresh_traces,
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
_ENVIRONMENT = SPAN_COLUMNS.index("environment")
# Spans per group transaction: concurrent OTLP batches (512 spans by default) are merged up to this.
GROUP_MAX_SPANS = 8192


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
        group = SpanGroup(keys, rows, parts, owner)
        try:
            new, refused, inherited = await self._write_rollups_first(group)
        except Replay:
            # Found under the locks: a span id stored at another start time by a writer that
            # committed meanwhile, or an environment inherited across writes. The rollup rows
            # added before the locks are then wrong: the group is written again, all under them.
            new, refused, inherited = await self._write_under_locks(group)
        for i in refused:
            conflicts[owner[keys[i]]].append(keys[i])
        if new and self._on_stored is not None:
            touched = [rows[i][START_TIME] for i in new] + [key[2] for key in inherited.before]
            self._on_stored(min(touched), max(touched))
        stored = [0] * len(batches)
        for i in new:
            stored[owner[keys[i]]] += 1
        return [SpanWrite(count, refused) for count, refused in zip(stored, conflicts, strict=True)]

    async def _write_rollups_first(self, group: SpanGroup) -> tuple[list[int], list[int], Inherited]:
        """The group's spans and rollup rows before the traces' locks, the summaries under them.

        What runs before the locks overlaps the turn of a concurrent writer of the same traces
        (the span COPY and the rollup upserts were ~60% of the locked work). The order of the
        locks: span keys and rollup rows (each in key order), then the traces' and the sessions'
        advisory locks; nothing under the traces' locks waits for a span key or a rollup row. A
        group that must be written the other way round (`Replay`) holds `lock_write_order` alone.
        """
        keys, rows, parts = group.keys, group.rows, group.parts
        async with self._engine.begin() as conn:
            await prepare_write_transaction(conn)
            await lock_write_order(conn, exclusive=False)
            trace_ids = sorted({key[0] for key in keys})
            # A span id stored at another start time is looked for under the locks below.
            new_keys = set(await insert_new_rows(conn, spans, rows, key=_SPAN_KEY))
            new = [i for i, key in enumerate(keys) if key in new_keys]
            if not new:  # a pure retry: nothing of its traces changes
                return new, [], NOTHING_INHERITED
            rollups = not self._capabilities.continuous_aggregates
            if rollups:
                await add_to_rollups(conn, [parts[i] for i in new])
            await lock_summaries(conn, "traces", trace_ids)
            before = await stored_totals(conn, trace_ids)
            if await new_ids_stored_elsewhere(conn, [keys[i] for i in new], before):
                raise Replay
            new_rows = [rows[i] for i in new]
            inherited = await self._refresh_summaries(conn, new_rows, before, group.spread(new))
            if rollups and moves_environment(inherited, {keys[i]: rows[i][_ENVIRONMENT] for i in new}):
                raise Replay
        return new, [], inherited

    async def _write_under_locks(self, group: SpanGroup) -> tuple[list[int], list[int], Inherited]:
        """The group written under the traces' locks from the start (the rollup rows last)."""
        keys, rows, parts = group.keys, group.rows, group.parts
        inherited = NOTHING_INHERITED
        async with self._engine.begin() as conn:
            await prepare_write_transaction(conn)
            await lock_write_order(conn, exclusive=True)
            # The traces' locks first: the check below and the insert then see every span of
            # these traces that a concurrent writer committed (SQLite: one writer at a time).
            trace_ids = sorted({key[0] for key in keys})
            await lock_summaries(conn, "traces", trace_ids)
            before = await stored_totals(conn, trace_ids)
            kept = await without_conflicts(conn, keys, before)
            refused = sorted(set(range(len(keys))) - set(kept))
            new_keys = set(await insert_new_rows(conn, spans, [rows[i] for i in kept], key=_SPAN_KEY))
            # Only traces with a new span can have changed: a pure retry skips everything below.
            new = [i for i in kept if keys[i] in new_keys]
            if new:
                new_rows = [rows[i] for i in new]
                inherited = await self._refresh_summaries(conn, new_rows, before, group.spread(new))
                # Last: the rollup rows other writers also add to stay locked only until commit.
                # On TimescaleDB the continuous aggregates follow `spans` without them.
                if not self._capabilities.continuous_aggregates:
                    new_parts = [parts[i] for i in new]
                    if inherited.changed:
                        new_parts = [
                            contribution(row) if key_of(row) in inherited.changed else part
                            for row, part in zip(new_rows, new_parts, strict=True)
                        ]
                    await add_to_rollups(conn, new_parts)
                    await move_stored_spans_in_rollups(conn, inherited)
        return new, refused, inherited

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
        trace_ids = sorted({row[TRACE_ID] for row in new_rows})
        before = {trace_id: stored[trace_id] for trace_id in trace_ids if trace_id in stored}
        inherited = await inherit_from_stored(conn, new_rows, before, spread)
        # A trace's session is one its spans name, or the one its summary had before: a trace
        # that moved to another session must leave the old one's totals too.
        session_ids = {row[SESSION_ID] for row in new_rows if row[SESSION_ID] is not None}
        session_ids.update(totals.session_id for totals in before.values() if totals.session_id is not None)
        session_ids.update(context[1] for context in inherited.changed.values() if context[1] is not None)
        await lock_summaries(conn, "sessions", sorted(session_ids))
        after: list[TraceTotals] = []
        for chunk in chunks(trace_ids, IDS_PER_STATEMENT):
            after += [TraceTotals(*row) for row in await conn.execute(refresh_traces(dialect_name), {IDS: list(chunk)})]
        changes = session_changes(before, after)
        await add_session_changes(conn, changes.added)
        for chunk in chunks(changes.recompute, IDS_PER_STATEMENT):
            await conn.execute(refresh_sessions(dialect_name), {IDS: list(chunk)})
            await conn.execute(delete_empty_sessions(dialect_name), {IDS: list(chunk)})
        return inherited


def _span_batch(records: Sequence[SpanRecord], conflicts: list[SpanKey]) -> _SpanBatch:
    records = inherit_in_batch(records)
    rows = [msgspec.structs.astuple(record) for record in records]
    return _SpanBatch([_key(record) for record in records], rows, [contribution(row) for row in rows], conflicts)


def _key(record: SpanRecord) -> SpanKey:
    return record.trace_id, record.span_id, record.start_time
