"""TelemetryWriter: stores spans and logs idempotently, and keeps the summaries in step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.db.dialect import (
    analyze_tables,
    insert_ignoring_duplicates,
    insert_new_rows,
    prepare_write_transaction,
)
from observatory_api.db.tables import logs, spans
from observatory_api.metrics.rollups import add_to_rollups
from observatory_api.storage.costs import CostFiller
from observatory_api.storage.records import LogRecord, SpanRecord
from observatory_api.storage.summaries import (
    delete_empty_sessions,
    refresh_sessions,
    refresh_traces,
    sessions_of_traces,
)

_FIRST_ANALYZE = 20_000
_ANALYZED_TABLES = (
    "spans",
    "traces",
    "sessions",
    "metric_rollup_minute",
    "metric_rollup_minute_overall",
    "metric_rollup_hour",
    "metric_rollup_day",
)
_SPAN_KEY = ("trace_id", "span_id", "start_time")  # the primary key of spans
# Ids per IN (...) list: well under the bound-parameter limits of SQLite and asyncpg (32766).
_IDS_PER_STATEMENT = 1000

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TelemetryWriter:
    """Writes batches of records through an engine with write rights.

    Each call is one transaction: the rows and the summaries they change are stored together or
    not at all. Rows whose primary key is already stored are skipped, so a retried batch is safe.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._costs = CostFiller()
        self._stored_spans = 0
        self._analyze_at = _FIRST_ANALYZE

    async def write_spans(self, records: Sequence[SpanRecord]) -> int:
        """Store `records`, refresh their traces and sessions; returns the spans newly stored.

        Spans without a cost are priced from the catalogue; the spans newly stored are added to
        the metric rollups in the same transaction.
        """
        if not records:
            return 0
        async with self._engine.begin() as conn:
            await prepare_write_transaction(conn)
            records = await self._costs.fill(conn, records)
            rows = [msgspec.structs.astuple(record) for record in records]
            new_keys = set(await insert_new_rows(conn, spans, rows, key=_SPAN_KEY))
            stored = len(new_keys)
            if stored:
                await add_to_rollups(conn, [r for r in records if (r.trace_id, r.span_id, r.start_time) in new_keys])
                # Without new rows nothing can have changed: a pure retry skips the refresh.
                trace_ids = sorted({record.trace_id for record in records})
                batch_sessions = {record.session_id for record in records if record.session_id}
                await self._refresh_summaries(conn, trace_ids, batch_sessions)
        await self._analyze_as_tables_grow(stored)
        return stored

    async def _analyze_as_tables_grow(self, stored: int) -> None:
        # Planner statistics must follow tables that grow fast (a bulk load, or a server without
        # autovacuum): stale ones made the summary refresh scan and JIT-compile for ~1 s a batch.
        # Each doubling of what this writer stored triggers one ANALYZE: O(log n) in total.
        self._stored_spans += stored
        if self._stored_spans < self._analyze_at:
            return
        self._analyze_at = self._stored_spans * 2
        async with self._engine.begin() as conn:
            await analyze_tables(conn, _ANALYZED_TABLES)

    async def write_logs(self, records: Sequence[LogRecord]) -> int:
        """Store `records`; returns the log lines newly stored."""
        if not records:
            return 0
        rows = [msgspec.structs.astuple(record) for record in records]
        async with self._engine.begin() as conn:
            return await insert_ignoring_duplicates(conn, logs, rows)

    async def _refresh_summaries(
        self, conn: AsyncConnection, trace_ids: Sequence[str], batch_sessions: set[str]
    ) -> None:
        dialect_name = conn.dialect.name
        # A trace's session is one its spans name, or the one its summary had before: a trace
        # that moved to another session must leave the old one's totals too.
        session_ids = set(batch_sessions)
        for chunk in _chunks(trace_ids, _IDS_PER_STATEMENT):
            session_ids.update((await conn.scalars(sessions_of_traces(chunk))).all())
        for chunk in _chunks(trace_ids, _IDS_PER_STATEMENT):
            await conn.execute(refresh_traces(dialect_name, chunk))
        for chunk in _chunks(sorted(session_ids), _IDS_PER_STATEMENT):
            await conn.execute(refresh_sessions(dialect_name, chunk))
            await conn.execute(delete_empty_sessions(chunk))
