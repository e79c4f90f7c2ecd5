"""Which time ranges of a TimescaleDB continuous aggregate wait for its refresh, for the segment cache.

Real-time aggregation reads raw spans above an aggregate's watermark, so a span written there
counts at once; below it, a span written (late, a backfill) is only logged as an invalidation and
the aggregate changes when its refresh policy runs. A segment read meanwhile is right for now but
would go stale at that refresh, which announces nothing: it must not be kept. A range waits while
any invalidation below the watermark touches it: in the hypertable's log (not yet moved by a
refresh), the aggregate's own log, or its materialisation ranges (moved, not yet materialised).
A refresh deletes each of them in the transaction that materialises its range, so a read begun
after this check sees every range the check found clear as the aggregate has it for good (until
the next write, which the writer invalidates as usual).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.core.query import TimeWindow

# TimescaleDB's internal time of a timestamptz: microseconds since the Unix epoch.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every check of one answer in one statement: row `k.i` asks about `k.view` over [k.first, k.stop).
_PENDING = """
SELECT k.i, greatest(i.lowest, k.first) AS first, least(i.greatest, k.stop) AS last
FROM (VALUES {checks}) AS k(i, view, first, stop)
JOIN _timescaledb_catalog.continuous_agg c ON c.user_view_schema = current_schema() AND c.user_view_name = k.view
CROSS JOIN LATERAL (SELECT _timescaledb_functions.cagg_watermark(c.mat_hypertable_id) AS watermark) w
CROSS JOIN LATERAL (
    SELECT lowest_modified_value AS lowest, greatest_modified_value AS greatest
    FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log
    WHERE hypertable_id = c.raw_hypertable_id
    UNION ALL
    SELECT lowest_modified_value, greatest_modified_value
    FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log
    WHERE materialization_id = c.mat_hypertable_id
    UNION ALL
    SELECT lowest_modified_value, greatest_modified_value
    FROM _timescaledb_catalog.continuous_aggs_materialization_ranges
    WHERE materialization_id = c.mat_hypertable_id
) i
WHERE i.lowest < least(w.watermark, k.stop) AND i.greatest >= k.first
"""


@cache
def _statement(checks: int) -> TextClause:
    rows = ", ".join(
        f"({n}, CAST(:view_{n} AS text), CAST(:first_{n} AS bigint), CAST(:stop_{n} AS bigint))" for n in range(checks)
    )
    return text(_PENDING.format(checks=rows))


def _internal(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


Pending = list[tuple[datetime, datetime]]


async def pending_ranges(conn: AsyncConnection, checks: list[tuple[str, TimeWindow]]) -> list[Pending]:
    """For each (view, window) of `checks`, the (first, last) raw times (both included) of `window`
    whose writes `view` has not yet materialised below its watermark: one statement for all the
    segments of an answer. Run it before reading the aggregates (after taking the cache's
    generation): what it finds clear is then read as materialised."""
    found: list[Pending] = [[] for _ in checks]
    if not checks:
        return found
    params: dict[str, Any] = {}
    for n, (view, window) in enumerate(checks):
        params[f"view_{n}"], params[f"first_{n}"], params[f"stop_{n}"] = (
            view,
            _internal(window.start),
            _internal(window.end),
        )
    for at, first, last in await conn.execute(_statement(len(checks)), params):
        found[at].append((_moment(first), _moment(last)))
    return found


def touches(pending: Pending, piece: TimeWindow) -> bool:
    """Whether any pending range holds a time of [piece.start, piece.end)."""
    return any(first < piece.end and piece.start <= last for first, last in pending)
