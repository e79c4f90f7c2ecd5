"""The statements that recompute `traces` and `sessions` rows from the stored rows beneath them.

Summaries are recomputed from everything stored, never incremented, so a trace whose spans
arrive over several batches (or a retried batch) always ends with the right summary.

Each statement is built once per dialect and takes its ids as the list parameter `IDS`
(building the refresh anew for every batch cost more Python time than running it).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Select,
    Subquery,
    and_,
    case,
    delete,
    distinct,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql

from observatory_api.db.dialect import epoch_ms_between, in_bound_list, sorted_json_array, upsert_from_select
from observatory_api.db.tables import sessions, spans, traces

IDS = "ids"


def _id_in_list(dialect_name: str, column: Any) -> Any:
    return in_bound_list(dialect_name, column, IDS)


def _is_root_first(table: Any) -> Any:
    # Root spans (no parent) sort first; among equals the earliest, then the id for determinism.
    return (case((table.c.parent_span_id.is_(None), 0), else_=1), table.c.start_time, table.c.span_id)


def _count_where(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


@cache
def refresh_traces(dialect_name: str) -> Insert:
    """Upsert the `traces` row of each trace id in `IDS` from its spans."""
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

    root_tags, llm_models = _root_tags_and_models(dialect_name, ranked, is_root)
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
        func.max(case((is_first_llm, r.model))),
        llm_models,
        root_tags,
    ).group_by(r.trace_id)
    return upsert_from_select(dialect_name, traces, rows, key=["trace_id"])


def _root_tags_and_models(dialect_name: str, ranked: Subquery, is_root: ColumnElement[bool]) -> tuple[Any, Any]:
    """The root span's tags and the sorted distinct models of the LLM spans, per trace of `ranked`."""
    r = ranked.c
    if dialect_name == "postgresql":
        # Aggregates over the rows already grouped: two look-ups per trace cost ~40% of the refresh.
        model = r.model.collate("C")  # code point order, as SQLite's BINARY
        models = func.jsonb_agg(postgresql.aggregate_order_by(distinct(model), model))
        llm_models = func.coalesce(
            models.filter(and_(r.kind == "llm", r.model.is_not(None))), literal_column("'[]'::jsonb")
        )
        return func.array_agg(r.tags).filter(is_root)[1], llm_models
    # SQLite has no ORDER BY in aggregates and no max() of JSON: look-ups per trace.
    root = spans.alias("root_span")
    root_tags = (
        select(root.c.tags)
        .where(root.c.trace_id == r.trace_id)
        .order_by(*_is_root_first(root))
        .limit(1)
        .scalar_subquery()
    )
    # The kind test sits in the select list, not in WHERE: SQLite without ANALYZE statistics
    # would otherwise search the kind index (every LLM span ever stored) instead of the trace's.
    llm = spans.alias("llm_span")
    llm_model = case((llm.c.kind == "llm", llm.c.model)).label("model")
    llm_models = (
        select(llm_model)
        .distinct()
        .where(llm.c.trace_id == r.trace_id)
        .order_by(llm_model)
        .correlate(ranked)
        .subquery("llm_models")
    )
    return root_tags, sorted_json_array(dialect_name, llm_models)


@cache
def sessions_of_traces(dialect_name: str) -> Select[Any]:
    """The session ids the stored summaries of the traces in `IDS` belong to."""
    return (
        select(traces.c.session_id)
        .distinct()
        .where(_id_in_list(dialect_name, traces.c.trace_id), traces.c.session_id.is_not(None))
    )


@cache
def refresh_sessions(dialect_name: str) -> Insert:
    """Upsert the `sessions` row of each session id in `IDS` from its `traces` rows."""
    first = traces.alias("first_trace")

    def of_first_trace(column_name: str) -> Any:
        # The earliest trace that knows the value: a session keeps the user it started with.
        return (
            select(first.c[column_name])
            .where(first.c.session_id == traces.c.session_id, first.c[column_name].is_not(None))
            .order_by(first.c.start_time, first.c.trace_id)
            .limit(1)
            .scalar_subquery()
        )

    rows = (
        select(
            traces.c.session_id,
            of_first_trace("user_id"),
            of_first_trace("environment"),
            func.min(traces.c.start_time),
            func.max(traces.c.end_time),
            func.count(),
            _count_where(traces.c.status == "error"),
            func.sum(traces.c.input_tokens),
            func.sum(traces.c.output_tokens),
            func.sum(traces.c.total_tokens),
            func.sum(traces.c.cost_usd),
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
