"""A span's identity is its (trace_id, span_id): the statement that finds where one is already stored.

The primary key of `spans` holds `start_time` too (a TimescaleDB hypertable's unique indexes
must include its time column), so the database alone would store a second span of the same id
at another start time. The writer looks such spans up before inserting, under the trace's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.tables import spans
from observatory_api.db.write_sql import in_bound_list

SpanId = tuple[str, str]  # (trace_id, span_id)
SpanKey = tuple[str, str, datetime]  # the primary key of spans
_TRACE_IDS, _SPAN_IDS, _SINCE = "trace_ids", "span_ids", "since"
_IDS_PER_STATEMENT = 1000


@cache
def _stored_starts(dialect_name: str) -> Select[Any]:
    # Both lists are index conditions of the primary key (trace_id, span_id, start_time); the
    # lower time bound lets TimescaleDB skip the chunks older than the traces.
    return select(spans.c.trace_id, spans.c.span_id, spans.c.start_time).where(
        in_bound_list(dialect_name, spans.c.trace_id, _TRACE_IDS),
        in_bound_list(dialect_name, spans.c.span_id, _SPAN_IDS),
        spans.c.start_time >= bindparam(_SINCE),
    )


async def _stored_rows(conn: AsyncConnection, ids: Sequence[SpanId], *, since: datetime) -> list[Row[Any]]:
    """(trace_id, span_id, start_time) of the stored spans whose trace and span ids are among `ids`
    (the two lists also match other pairs: callers keep theirs), starting at or after `since`."""
    statement = _stored_starts(conn.dialect.name)
    rows: list[Row[Any]] = []
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        parameters = {
            _TRACE_IDS: sorted({trace_id for trace_id, _ in chunk}),
            _SPAN_IDS: sorted({span_id for _, span_id in chunk}),
            _SINCE: since,
        }
        rows += (await conn.execute(statement, parameters)).all()
    return rows


async def stored_starts(conn: AsyncConnection, ids: Sequence[SpanId], *, since: datetime) -> dict[SpanId, datetime]:
    """The start times at which the spans `ids` are stored, among those starting at or after `since`."""
    found: dict[SpanId, datetime] = {}
    wanted = set(ids)
    for row in await _stored_rows(conn, ids, since=since):
        if (row.trace_id, row.span_id) in wanted:
            found.setdefault((row.trace_id, row.span_id), row.start_time)
    return found


async def stored_elsewhere(conn: AsyncConnection, keys: Sequence[SpanKey], *, since: datetime) -> bool:
    """Whether one of the spans `keys` (stored) is stored at another start time too, among the
    spans starting at or after `since`."""
    own = {key[:2]: key[2] for key in keys}
    rows = await _stored_rows(conn, list(own), since=since)
    return any(own.get((row.trace_id, row.span_id), row.start_time) != row.start_time for row in rows)
