"""What a group transaction of the writer reads and checks about the traces it writes to.

The spans' rows as the writer holds them (tuples in `spans` column order), the traces' stored
totals, the span ids stored at another start time, the context inherited across writes, and what
tells a group written before the traces' locks to be written again under them (`Replay`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.tables import spans
from observatory_api.metrics.rollups import Contribution, contribution, move_in_rollups
from observatory_api.storage.context import (
    CONTEXT_COLUMNS,
    NOTHING_INHERITED,
    Inherited,
    NewSpan,
    inherit_across_writes,
    stored_rows,
)
from observatory_api.storage.session_changes import TraceTotals
from observatory_api.storage.span_identity import SpanKey, stored_elsewhere, stored_starts
from observatory_api.storage.summaries import IDS, trace_totals

SPAN_COLUMNS = [column.name for column in spans.columns]
TRACE_ID, SESSION_ID = SPAN_COLUMNS.index("trace_id"), SPAN_COLUMNS.index("session_id")
_SPAN_ID, START_TIME = SPAN_COLUMNS.index("span_id"), SPAN_COLUMNS.index("start_time")
_PARENT_SPAN_ID = SPAN_COLUMNS.index("parent_span_id")
_ENVIRONMENT = SPAN_COLUMNS.index("environment")
_CONTEXT_AT = tuple(SPAN_COLUMNS.index(name) for name in CONTEXT_COLUMNS)
_ENVIRONMENT_IN_CONTEXT = CONTEXT_COLUMNS.index("environment")
# Ids per IN (...) list: well under the bound-parameter limits of SQLite and asyncpg (32766).
IDS_PER_STATEMENT = 1000

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Replay(Exception):
    """The rollup rows added before the traces' locks do not hold for what was found under them."""


@dataclass(frozen=True, slots=True)
class SpanGroup:
    """A group transaction's spans, each key once: rows, contributions and the batch of each key."""

    keys: list[SpanKey]
    rows: list[tuple[Any, ...]]
    parts: list[Contribution]
    owner: dict[SpanKey, int]

    def spread(self, new: Sequence[int]) -> set[str]:
        """The traces whose new spans came from several batches (each batch inherited alone)."""
        batches_of: dict[str, set[int]] = {}
        for i in new:
            batches_of.setdefault(self.rows[i][TRACE_ID], set()).add(self.owner[self.keys[i]])
        return {trace_id for trace_id, indexes in batches_of.items() if len(indexes) > 1}


def moves_environment(inherited: Inherited, staged: dict[SpanKey, str | None]) -> bool:
    """Whether a span inherited an environment (a rollup dimension; the rest of the context is
    not): a stored span's old one is in `inherited.before`, a new span's as staged in `staged`."""
    at = _ENVIRONMENT_IN_CONTEXT
    for key, context in inherited.changed.items():
        old = inherited.before[key][at] if key in inherited.before else staged[key]
        if old != context[at]:
            return True
    return False


async def new_ids_stored_elsewhere(
    conn: AsyncConnection, keys: Sequence[SpanKey], before: dict[str, TraceTotals]
) -> bool:
    """Whether a span of `keys` (just stored) has its id stored at another start time too: only
    in a trace that had a summary (`before`, read under the traces' locks)."""
    found = _in_stored_traces(keys, before)
    if found is None:
        return False
    known, since = found
    return await stored_elsewhere(conn, known, since=since)


def _in_stored_traces(keys: Sequence[SpanKey], before: dict[str, TraceTotals]) -> tuple[list[SpanKey], datetime] | None:
    """The keys of `keys` in traces that had a summary (`before`) and the earliest start of those
    traces (no span of a trace starts before its summary's start); None when there are none."""
    known = [key for key in keys if key[0] in before]
    return (known, min(before[key[0]].start_time for key in known)) if known else None


async def inherit_from_stored(
    conn: AsyncConnection, new_rows: list[tuple[Any, ...]], before: dict[str, TraceTotals], spread: set[str]
) -> Inherited:
    """Context down the tree across writes (`storage.context`), for the traces that had spans
    stored before (`before`) or whose new spans came from several batches (`spread`); the
    inherited values are patched into `new_rows` too."""
    traces = {row[TRACE_ID] for row in new_rows if row[TRACE_ID] in before or row[TRACE_ID] in spread}
    if not traces:
        return NOTHING_INHERITED
    new = [
        NewSpan(key_of(row), row[_PARENT_SPAN_ID], tuple(row[at] for at in _CONTEXT_AT))
        for row in new_rows
        if row[TRACE_ID] in traces
    ]
    stored_traces = {trace_id: before[trace_id].context_bits for trace_id in traces & before.keys()}
    starts = [span.key[2] for span in new]
    low = min([*starts, *(before[t].start_time for t in stored_traces)])
    high = max([*starts, *(before[t].end_time for t in stored_traces)])
    inherited = await inherit_across_writes(conn, new, stored_traces=stored_traces, low=low, high=high)
    if inherited.changed:
        for index, row in enumerate(new_rows):
            context = inherited.changed.get(key_of(row))
            if context is not None:
                patched = list(row)
                for at, value in zip(_CONTEXT_AT, context, strict=True):
                    patched[at] = value
                new_rows[index] = tuple(patched)
    return inherited


async def move_stored_spans_in_rollups(conn: AsyncConnection, inherited: Inherited) -> None:
    """Spans stored before that inherited an environment leave the rollup rows of their old one."""
    at = _ENVIRONMENT_IN_CONTEXT
    moved = [key for key, old in inherited.before.items() if old[at] != inherited.changed[key][at]]
    if not moved:
        return
    rows = await stored_rows(conn, moved)
    removed = []
    for row in rows:
        old = list(row)
        old[_ENVIRONMENT] = inherited.before[key_of(row)][at]
        removed.append(contribution(old))
    await move_in_rollups(conn, removed=removed, added=[contribution(row) for row in rows])


def key_of(row: Sequence[Any]) -> SpanKey:
    return row[TRACE_ID], row[_SPAN_ID], row[START_TIME]


async def stored_totals(conn: AsyncConnection, trace_ids: Sequence[str]) -> dict[str, TraceTotals]:
    found: dict[str, TraceTotals] = {}
    for chunk in chunks(trace_ids, IDS_PER_STATEMENT):
        for row in await conn.execute(trace_totals(conn.dialect.name), {IDS: list(chunk)}):
            found[row.trace_id] = TraceTotals(*row)
    return found


async def without_conflicts(
    conn: AsyncConnection, keys: Sequence[SpanKey], before: dict[str, TraceTotals]
) -> list[int]:
    """The indexes of `keys` whose span id is not stored at another start time.

    Only a trace with a summary can hold spans (the summary is written with them), and none of
    them starts before the summary's start: a batch of new traces, the common case, costs nothing.
    """
    found = _in_stored_traces(keys, before)
    if found is None:
        return list(range(len(keys)))
    known, since = found
    stored = await stored_starts(conn, [key[:2] for key in known], since=since)
    return [i for i, key in enumerate(keys) if stored.get(key[:2], key[2]) == key[2]]
