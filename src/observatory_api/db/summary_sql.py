"""The per-dialect pieces of the summary refresh (storage/summaries.py builds the rest): a trace's
root tags and models, and a batch of session changes bound as one statement."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    distinct,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeEngine

from observatory_api.db.tables import spans
from observatory_api.db.types import UTCDateTime
from observatory_api.db.write_sql import dialect_insert, sorted_json_array


def root_tags_and_models(
    dialect_name: str, ranked: Subquery, is_root: ColumnElement[bool], root_first: Callable[[Any], Any]
) -> tuple[Any, Any]:
    """The root span's tags and the sorted distinct models of the LLM spans, per trace of `ranked`
    (spans with a `root_rank`, grouped by trace); `root_first(table)` orders a trace's spans root
    first, as `root_rank` does."""
    r = ranked.c
    if dialect_name == "postgresql":
        # Aggregates over the rows already grouped: two look-ups per trace cost ~40% of the refresh.
        model = r.model_id.collate("C")  # code point order, as SQLite's BINARY
        models = func.jsonb_agg(postgresql.aggregate_order_by(distinct(model), model))
        llm_models = func.coalesce(
            models.filter(and_(r.kind == "llm", r.model_id.is_not(None))), literal_column("'[]'::jsonb")
        )
        return func.array_agg(r.tags).filter(is_root)[1], llm_models
    # SQLite has no ORDER BY in aggregates and no max() of JSON: look-ups per trace.
    root = spans.alias("root_span")
    root_tags = (
        select(root.c.tags).where(root.c.trace_id == r.trace_id).order_by(*root_first(root)).limit(1).scalar_subquery()
    )
    # The kind test sits in the select list, not in WHERE: SQLite without ANALYZE statistics
    # would otherwise search the kind index (every LLM span ever stored) instead of the trace's.
    llm = spans.alias("llm_span")
    llm_model = case((llm.c.kind == "llm", llm.c.model_id)).label("model")
    models_of_trace = (
        select(llm_model)
        .distinct()
        .where(llm.c.trace_id == r.trace_id)
        .order_by(llm_model)
        .correlate(ranked)
        .subquery("llm_models")
    )
    return root_tags, sorted_json_array(dialect_name, models_of_trace)


def batch_columns(dialect_name: str, types: Mapping[str, TypeEngine[Any]]) -> dict[str, Any]:
    """One column per name of `types`, bound at execution to a batch of rows (`batch_parameters`).

    PostgreSQL takes the whole batch in one statement: one array parameter per column, unnested
    into rows. SQLite runs the statement once per row (executemany), one parameter per column.
    """
    if dialect_name == "postgresql":
        # DateTime, not UTCDateTime, inside the arrays: the rows carry aware UTC datetimes.
        element_types = {
            name: DateTime(timezone=True) if isinstance(type_, UTCDateTime) else type_ for name, type_ in types.items()
        }
        arrays = [bindparam(name, type_=postgresql.ARRAY(element_types[name])) for name in types]
        rows = func.unnest(*arrays).table_valued(*types).render_derived(name="changed")
        return {name: rows.c[name] for name in types}
    return {name: bindparam(name, type_=type_) for name, type_ in types.items()}


def insert_batch(dialect_name: str, table: Table, values: Mapping[str, Any]) -> postgresql.Insert | sqlite.Insert:
    """INSERT into `table` the `values` (over `batch_columns`), with ON CONFLICT support."""
    insert = dialect_insert(dialect_name, table)
    if dialect_name == "postgresql":
        return insert.from_select(list(values), select(*values.values()))
    return insert.values(dict(values))


def batch_parameters(
    dialect_name: str, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]] | list[dict[str, Any]]:
    """The execution parameters of `rows` for a statement over `batch_columns(names)`."""
    if dialect_name == "postgresql":
        return {name: [row[name] for row in rows] for name in names}
    return [dict(row) for row in rows]
