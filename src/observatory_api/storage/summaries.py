"""The statements that keep the `traces` and `sessions` summaries in step with the rows beneath them.

A trace summary is recomputed from all of its spans, never incremented, so a trace whose spans
arrive over several batches always ends with the right summary. A session summary is updated by
what its changed traces added (`storage.session_changes`): recomputing it from all its traces
grew with the session (~300 ms a batch at 1,700 traces a session). A session that lost a trace to
another session is recomputed in full.

Each statement is built once per dialect and takes its ids as the list parameter `IDS`
(building the refresh anew for every batch cost more Python time than running it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from typing import Any

from sqlalchemy import (
    Delete,
    Insert,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.summary_sql import batch_columns, batch_parameters, insert_batch, root_tags_and_models
from observatory_api.db.tables import sessions, spans, traces
from observatory_api.db.write_sql import (
    earliest,
    epoch_ms_between,
    in_bound_list,
    latest,
    upsert_from_select,
)
from observatory_api.storage.context import context_bits
from observatory_api.storage.session_changes import SessionChange

IDS = "ids"


def _id_in_list(dialect_name: str, column: Any) -> Any:
    return in_bound_list(dialect_name, column, IDS)


def _is_root_first(table: Any) -> Any:
    # Root spans (no parent) sort first; among equals the earliest, then the id for determinism.
    return (case((table.c.parent_span_id.is_(None), 0), else_=1), table.c.start_time, table.c.span_id)


def _count_where(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def unpriced_call(t: Any) -> Any:
    """A model call that succeeded but has no cost: its price (or its usage) is unknown. A failed
    call without usage is not billed, so it is not counted as unpriced."""
    return and_(t.kind.in_(("llm", "embedding")), t.cost_source == "none", t.status != "error")


@cache
def refresh_traces(dialect_name: str) -> Insert:
    """Upsert the `traces` row of each trace id in `IDS` from its spans; returns their `TOTALS`."""
    llm_first = (case((spans.c.kind == "llm", 0), else_=1), spans.c.start_time, spans.c.span_id)
    ranked = (
        select(
            spans,
            func.row_number().over(partition_by=spans.c.trace_id, order_by=_is_root_first(spans)).label("root_rank"),
            func.row_number().over(partition_by=spans.c.trace_id, order_by=llm_first).label("llm_rank"),
        )
        .where(_id_in_list(dialect_name, spans.c.trace_id))
        .subquery("ranked")
    )
    r = ranked.c
    is_root = r.root_rank == 1
    is_first_llm = and_(r.llm_rank == 1, r.kind == "llm")

    def of_root(column: Any) -> Any:
        # One row per trace has root_rank 1: max() just picks it out of the group.
        return func.max(case((is_root, column)))

    def of_root_else_any(column: Any) -> Any:
        return func.coalesce(of_root(column), func.max(column))

    root_tags, llm_models = root_tags_and_models(dialect_name, ranked, is_root, _is_root_first)
    errors = _count_where(r.status == "error")
    start, end = func.min(r.start_time), func.max(r.end_time)
    rows = select(
        r.trace_id,
        of_root(r.name),
        of_root(r.service_name),
        start,
        end,
        epoch_ms_between(start, end),
        func.count(),
        _count_where(r.kind == "llm"),
        errors,
        func.sum(func.coalesce(r.input_tokens, 0)),
        func.sum(func.coalesce(r.output_tokens, 0)),
        func.sum(func.coalesce(r.total_tokens, 0)),
        func.sum(func.coalesce(r.cost_usd, 0.0)),
        case((errors > 0, "error"), (_count_where(r.status == "ok") > 0, "ok"), else_="unset"),
        of_root_else_any(r.user_id),
        of_root_else_any(r.session_id),
        of_root_else_any(r.environment),
        func.max(case((is_first_llm, r.provider))),
        func.max(case((is_first_llm, r.model_id))),
        llm_models,
        root_tags,
        context_bits(dialect_name, r),
        _count_where(unpriced_call(r)),
    ).group_by(r.trace_id)
    upsert = upsert_from_select(dialect_name, traces, rows, key=["trace_id"])
    return upsert.returning(*(traces.c[name] for name in TOTALS))


# What a session summary adds up from each of its traces, in `TraceTotals` order.
TOTALS = (
    "trace_id",
    "session_id",
    "start_time",
    "end_time",
    "status",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_calls",
    "context_bits",
)


@cache
def trace_totals(dialect_name: str) -> Select[Any]:
    """The `TOTALS` of the stored summaries of the traces in `IDS` (before they are refreshed)."""
    return select(*(traces.c[name] for name in TOTALS)).where(_id_in_list(dialect_name, traces.c.trace_id))


def _of_first_trace(column_name: str, session_id: Any) -> Any:
    # The earliest trace that knows the value: a session keeps the user it started with. An
    # index range scan (session_id, start_time) that stops at the first trace with a value.
    first = traces.alias("first_trace")
    return (
        select(first.c[column_name])
        .where(first.c.session_id == session_id, first.c[column_name].is_not(None))
        .order_by(first.c.start_time, first.c.trace_id)
        .limit(1)
        .scalar_subquery()
    )


# The columns of `sessions` that are sums over its traces.
ADDED = ("trace_count", "error_count", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "unpriced_calls")
# The columns a `SessionChange` carries, in its field order.
_CHANGED = tuple(field.name for field in fields(SessionChange))


async def add_session_changes(conn: AsyncConnection, changes: Sequence[SessionChange]) -> None:
    """Add `changes` to their `sessions` rows (inserted when new).

    Counts and totals add up and the time range widens; the user and environment are looked up
    again from the session's earliest traces, which the change may have moved. PostgreSQL takes
    every change in one statement (one array per column); SQLite runs it once per change.
    """
    if not changes:
        return
    dialect_name = conn.dialect.name
    rows = [change.as_parameters() for change in changes]
    await conn.execute(_add_to_sessions(dialect_name), batch_parameters(dialect_name, _CHANGED, rows))


@cache
def _add_to_sessions(dialect_name: str) -> Insert:
    source = batch_columns(dialect_name, {name: sessions.c[name].type for name in _CHANGED})
    session_id = source["session_id"]
    values = {
        **source,
        "user_id": _of_first_trace("user_id", session_id),
        "environment": _of_first_trace("environment", session_id),
    }
    statement = insert_batch(dialect_name, sessions, values)
    new = statement.excluded
    updates = {
        "user_id": new.user_id,
        "environment": new.environment,
        "first_seen": earliest(dialect_name, sessions.c.first_seen, new.first_seen),
        "last_seen": latest(dialect_name, sessions.c.last_seen, new.last_seen),
        **{name: sessions.c[name] + new[name] for name in ADDED},
    }
    return statement.on_conflict_do_update(index_elements=["session_id"], set_=updates)


@cache
def refresh_sessions(dialect_name: str) -> Insert:
    """Upsert the `sessions` row of each session id in `IDS` from all its `traces` rows."""
    rows = (
        select(
            traces.c.session_id,
            _of_first_trace("user_id", traces.c.session_id),
            _of_first_trace("environment", traces.c.session_id),
            func.min(traces.c.start_time),
            func.max(traces.c.end_time),
            func.count(),
            _count_where(traces.c.status == "error"),
            func.sum(traces.c.input_tokens),
            func.sum(traces.c.output_tokens),
            func.sum(traces.c.total_tokens),
            func.sum(traces.c.cost_usd),
            func.sum(traces.c.unpriced_calls),
        )
        .where(_id_in_list(dialect_name, traces.c.session_id))
        .group_by(traces.c.session_id)
    )
    return upsert_from_select(dialect_name, sessions, rows, key=["session_id"])


@cache
def delete_empty_sessions(dialect_name: str) -> Delete:
    """Drop the rows of the sessions in `IDS` left without traces (their traces moved elsewhere)."""
    return delete(sessions).where(
        _id_in_list(dialect_name, sessions.c.session_id),
        ~exists().where(traces.c.session_id == sessions.c.session_id),
    )
