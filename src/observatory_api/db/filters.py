"""SQL for a checked filter tree (core/filters.py): conditions over the `spans` and `traces` tables,
built from whitelisted columns and bound values only."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Double, Integer, Table, and_, exists, false, literal, not_, or_, select
from sqlalchemy.sql.expression import Select

from observatory_api.core.canonical_models import canonical_model
from observatory_api.core.errors import InvalidInput
from observatory_api.core.filter_values import check_number, check_scalar, check_string, check_timestamp, in_values
from observatory_api.core.filters import SPAN_FIELDS, TRACE_FIELDS, Condition, FieldSpec, Node, lookup, split_field
from observatory_api.core.listing import ListPage
from observatory_api.db import tables
from observatory_api.db.json_sql import json_array_contains, json_path_condition
from observatory_api.db.keyset import Keyset


def compile_span_filter(node: Node, *, allow_content: bool) -> ColumnElement[bool]:
    """SQL over the `spans` table; without `allow_content`, a condition that could read content is a 400."""
    return _compile(node, lambda c: _span_condition(c, allow_content))


def compile_trace_filter(node: Node, *, allow_content: bool) -> ColumnElement[bool]:
    """SQL over the `traces` table; span-level fields become EXISTS over that trace's spans.
    Without `allow_content`, a condition that could read content is a 400."""
    return _compile(node, lambda c: _trace_condition(c, allow_content))


def page_condition(
    keyset: Keyset,
    page: ListPage,
    time: Column[Any],
    compile_filter: Callable[..., ColumnElement[bool]],
    *,
    allow_content: bool,
) -> ColumnElement[bool]:
    """A list page's rows: `time` in the walk's window, and the page's filters compiled by
    `compile_filter` (`compile_span_filter` or `compile_trace_filter`)."""
    condition = keyset.within(time)
    if page.node is None:
        return condition
    return and_(condition, compile_filter(page.node, allow_content=allow_content))


def page_statement(
    keyset: Keyset,
    page: ListPage,
    columns: Sequence[ColumnElement[Any]],
    time: Column[Any],
    compile_filter: Callable[..., ColumnElement[bool]],
    *,
    allow_content: bool,
    name: str,
) -> tuple[Select[Any] | Callable[[], Select[Any]], Hashable | None]:
    """What `Keyset.fetch` takes for a list page of `columns`: its statement, and its shape.

    Without filters the statement depends on the sort and the role only (the walk's values are
    bound at execution): it is built once for each, under `name` (db.keyset). A filter is
    compiled (and checked) here, before the caller takes a connection.
    """

    def statement() -> Select[Any]:
        return select(*columns).where(page_condition(keyset, page, time, compile_filter, allow_content=allow_content))

    if page.node is None:
        return statement, (name, allow_content)
    return statement(), None


def _compile(node: Node, leaf: Callable[[Condition], ColumnElement[bool]]) -> ColumnElement[bool]:
    if isinstance(node, Condition):
        return leaf(node)
    parts = [_compile(item, leaf) for item in node.items]
    if node.kind == "not":
        return not_(parts[0])
    return and_(*parts) if node.kind == "and" else or_(*parts)


def _span_condition(condition: Condition, allow_content: bool) -> ColumnElement[bool]:
    spec, path = lookup(condition, SPAN_FIELDS, allow_content)
    return _column_condition(tables.spans, spec, path, condition)


def _trace_condition(condition: Condition, allow_content: bool) -> ColumnElement[bool]:
    name, _ = split_field(condition.field)
    if name in TRACE_FIELDS:
        spec, path = lookup(condition, TRACE_FIELDS, allow_content)
        return _column_condition(tables.traces, spec, path, condition)
    spec, path = lookup(condition, SPAN_FIELDS, allow_content)
    spans = tables.spans
    traces = tables.traces
    # Bounded by the trace's time range: TimescaleDB then probes only the trace's chunks.
    matching = and_(
        spans.c.trace_id == traces.c.trace_id,
        spans.c.start_time >= traces.c.start_time,
        spans.c.start_time <= traces.c.end_time,
        _column_condition(spans, spec, path, condition),
    )
    return exists(select(1).select_from(spans).where(matching))


def _column_condition(table: Table, spec: FieldSpec, path: list[str], condition: Condition) -> ColumnElement[bool]:
    column = table.c[spec.column]
    op, value, where = condition.op, condition.value, f"{condition.where}.value"
    if op == "in":
        values = in_values(value, where)
        return or_(*(_single(column, spec, path, "eq", v, where) for v in values)) if values else false()
    return _single(column, spec, path, op, value, where)


def _single(
    column: ColumnElement[Any], spec: FieldSpec, path: list[str], op: str, value: Any, where: str
) -> ColumnElement[bool]:
    if op == "exists":
        if not isinstance(value, bool):
            raise InvalidInput.field(where, "`exists` takes true or false", "body")
        if spec.kind == "json":
            present = json_path_condition(column, path, "exists")
            return present if value else not_(present)
        return column.is_not(None) if value else column.is_(None)
    if spec.kind == "json":
        check_scalar(value, where)
        return json_path_condition(column, path, op, value)
    if spec.kind == "tags":
        text = check_string(value, where)
        contains = json_array_contains(column, _canonical(text) if spec.canonical_model else text)
        return not_(contains) if op == "ne" else contains
    if spec.kind == "num":
        return _compare(column, op, _number_operand(column, check_number(value, where)))
    if spec.kind == "time":
        return _compare(column, op, check_timestamp(value, where))
    text = check_string(value, where)
    if spec.kind == "enum" and text not in spec.choices:
        raise InvalidInput.field(where, f"must be one of {', '.join(spec.choices)}", "body")
    if op == "contains":
        return column.ilike(_like(text), escape="\\")
    return _compare(column, op, _canonical(text) if spec.canonical_model else text)


def _canonical(model: str) -> str:
    return canonical_model(None, model).model_id or model


def _compare(column: ColumnElement[Any], op: str, value: object) -> ColumnElement[bool]:
    match op:
        case "eq":
            return column == value
        case "ne":
            # Absent values differ from any value the client names.
            return or_(column != value, column.is_(None))
        case "gt":
            return column > value
        case "gte":
            return column >= value
        case "lt":
            return column < value
        case "lte":
            return column <= value
    raise InvalidInput.field("op", f"unsupported operator {op!r}", "body")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# Integers every integer column holds (PostgreSQL's integer is 32 bits).
_INT32 = range(-(2**31), 2**31)


def _number_operand(column: Any, number: float) -> Any:
    """`number` as the other side of a comparison with `column`: an integer an integer column holds
    as is (its index serves), anything else as a double, so that 2**40 or 1.5 against a 32-bit
    integer column, or 2**70 against any, compares as numbers instead of failing to bind."""
    if isinstance(column.type, Integer) and isinstance(number, int) and number in _INT32:
        return number
    return literal(float(number), Double())
