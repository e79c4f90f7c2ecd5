"""The boolean filter language of `POST /traces/search` (and, later, metric queries).

A filter is a tree of `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}` and conditions
`{"field": "model", "op": "eq", "value": "gpt-4o"}`. Fields are looked up in a whitelist per
target (spans or traces); SQL is built from those columns and bound values only. Attributes are
addressed by path: `attributes.customer.tier`, or `attributes["llm.temperature"]` for keys that
hold dots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Double, Integer, Table, and_, exists, false, literal, not_, or_, select

from observatory_api.core.canonical_models import canonical_model
from observatory_api.core.content import path_reaches_content
from observatory_api.db import tables
from observatory_api.db.json_sql import json_array_contains, json_path_condition
from observatory_api.errors import InvalidInput
from observatory_api.query import check_text, check_time

Op = Literal["eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "exists"]
FieldKind = Literal["str", "enum", "num", "time", "text", "tags", "json"]

OPS_BY_KIND: dict[FieldKind, frozenset[str]] = {
    "str": frozenset({"eq", "ne", "in", "contains", "exists"}),
    "enum": frozenset({"eq", "ne", "in"}),
    "num": frozenset({"eq", "ne", "in", "gt", "gte", "lt", "lte", "exists"}),
    "time": frozenset({"gt", "gte", "lt", "lte"}),
    "text": frozenset({"contains", "exists"}),
    "tags": frozenset({"eq", "ne", "in"}),
    "json": frozenset({"eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "exists"}),
}
MAX_DEPTH = 8
MAX_IN_VALUES = 100
MAX_STRING = 500
_KEY = r"[A-Za-z0-9_\-:@$]{1,100}"
# A quoted key holds anything but `"` and control characters: it is bound as data on both
# databases (a text[] parameter on PostgreSQL, a quoted JSON path label on SQLite), never parsed.
_QUOTED_KEY = r'[^"\x00-\x1f\x7f]{1,100}'
_ATTRIBUTE_SEGMENT = re.compile(rf'\.(?P<plain>{_KEY})|\["(?P<quoted>{_QUOTED_KEY})"\]')
# A whole attribute field, for the OpenAPI document (`_split_field` parses it).
ATTRIBUTE_FIELD = rf'^attributes(?:\.{_KEY}|\["{_QUOTED_KEY}"\]){{1,{MAX_DEPTH}}}$'
_ATTRIBUTE_PATH_REASON = (
    'an attribute path is attributes.<key> or attributes["<key>"]: a plain key holds 1 to 100 letters, '
    'digits or _-:@$, a quoted key 1 to 100 characters other than " and control characters'
)

GroupKind = Literal["and", "or", "not"]
GROUP_KINDS: tuple[GroupKind, ...] = ("and", "or", "not")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any
    where: str  # the position in the request, for error messages
    source: str = "body"  # where `where` is: "body", or "query" for the list endpoints' parameters


@dataclass(frozen=True, slots=True)
class Group:
    kind: GroupKind
    items: tuple[Node, ...]


Node = Condition | Group


def parse_filter(raw: Any, *, max_nodes: int, where: str = "filter") -> Node:
    """Validate the shape of a filter tree; field names are checked when it is compiled."""
    counter = [0]
    return _parse(raw, where, 0, counter, max_nodes)


def _parse(raw: Any, where: str, depth: int, counter: list[int], max_nodes: int) -> Node:
    counter[0] += 1
    if counter[0] > max_nodes:
        raise InvalidInput.field(where, f"the filter may hold at most {max_nodes} nodes", "body")
    if depth > MAX_DEPTH:
        raise InvalidInput.field(where, f"the filter may nest at most {MAX_DEPTH} levels", "body")
    if not isinstance(raw, dict):
        raise InvalidInput.field(where, "must be an object", "body")
    groups: list[GroupKind] = [key for key in GROUP_KINDS if key in raw]
    if groups:
        if len(raw) != 1:
            raise InvalidInput.field(where, f"`{groups[0]}` must be the only key of its object", "body")
        key = groups[0]
        if key == "not":
            return Group("not", (_parse(raw["not"], f"{where}.not", depth + 1, counter, max_nodes),))
        items = raw[key]
        if not isinstance(items, list) or not items:
            raise InvalidInput.field(f"{where}.{key}", "must be a non-empty list", "body")
        parsed = tuple(
            _parse(item, f"{where}.{key}[{i}]", depth + 1, counter, max_nodes) for i, item in enumerate(items)
        )
        return Group(key, parsed)
    unknown = set(raw) - {"field", "op", "value"}
    if unknown:
        raise InvalidInput.field(
            where, f"unknown key {sorted(unknown)[0]!r}; use and, or, not or field/op/value", "body"
        )
    field, op = raw.get("field"), raw.get("op")
    if not isinstance(field, str) or not field:
        raise InvalidInput.field(f"{where}.field", "is required and must be a string", "body")
    _check_attribute_path(field, f"{where}.field")
    if op not in OPS_BY_KIND["json"]:
        raise InvalidInput.field(f"{where}.op", f"unknown operator {op!r}", "body")
    if op != "exists" and "value" not in raw:
        raise InvalidInput.field(f"{where}.value", "is required", "body")
    return Condition(field=field, op=op, value=raw.get("value", True), where=where)


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True, slots=True)
class FieldSpec:
    kind: FieldKind
    column: str
    choices: tuple[str, ...] = ()
    content: bool = (
        False  # prompt, completion or error text (core.content): roles without content access cannot search it
    )
    # A model name compared for equality is folded to its canonical id first (core.canonical_models):
    # `gpt-4o-mini-2024-07-18`, `gpt-4o-mini` and `openai/gpt-4o-mini` all match that model.
    canonical_model: bool = False


SPAN_FIELDS: Mapping[str, FieldSpec] = {
    "trace_id": FieldSpec("str", "trace_id"),
    "span_id": FieldSpec("str", "span_id"),
    "parent_span_id": FieldSpec("str", "parent_span_id"),
    "service": FieldSpec("str", "service_name"),
    "name": FieldSpec("str", "name"),
    "kind": FieldSpec("enum", "kind", tables.SPAN_KINDS),
    "status": FieldSpec("enum", "status", tables.SPAN_STATUSES),
    "status_message": FieldSpec("str", "status_message", content=True),
    "provider": FieldSpec("str", "provider"),
    "model": FieldSpec("str", "model_id", canonical_model=True),
    "model_name": FieldSpec("str", "model"),
    "cost_source": FieldSpec("str", "cost_source"),
    "finish_reason": FieldSpec("str", "finish_reason"),
    "user_id": FieldSpec("str", "user_id"),
    "session_id": FieldSpec("str", "session_id"),
    "environment": FieldSpec("str", "environment"),
    "tag": FieldSpec("tags", "tags"),
    "start_time": FieldSpec("time", "start_time"),
    "duration_ms": FieldSpec("num", "duration_ms"),
    "cost_usd": FieldSpec("num", "cost_usd"),
    "input_tokens": FieldSpec("num", "input_tokens"),
    "output_tokens": FieldSpec("num", "output_tokens"),
    "total_tokens": FieldSpec("num", "total_tokens"),
    "cache_read_input_tokens": FieldSpec("num", "cache_read_input_tokens"),
    "cache_creation_input_tokens": FieldSpec("num", "cache_creation_input_tokens"),
    "reasoning_output_tokens": FieldSpec("num", "reasoning_output_tokens"),
    "time_to_first_token_ms": FieldSpec("num", "time_to_first_token_ms"),
    "input": FieldSpec("text", "input", content=True),
    "output": FieldSpec("text", "output", content=True),
    "attributes": FieldSpec("json", "attributes"),
}

# Trace-level fields read the summary row; any other span field matches a trace when one of
# its spans matches (each condition on its own).
TRACE_FIELDS: Mapping[str, FieldSpec] = {
    "trace_id": FieldSpec("str", "trace_id"),
    "name": FieldSpec("str", "name"),
    "service": FieldSpec("str", "service_name"),
    "status": FieldSpec("enum", "status", tables.SPAN_STATUSES),
    "provider": FieldSpec("str", "provider"),
    "user_id": FieldSpec("str", "user_id"),
    "session_id": FieldSpec("str", "session_id"),
    "environment": FieldSpec("str", "environment"),
    "tag": FieldSpec("tags", "tags"),
    "model": FieldSpec("tags", "models", canonical_model=True),
    "unpriced_calls": FieldSpec("num", "unpriced_calls"),
    "start_time": FieldSpec("time", "start_time"),
    "duration_ms": FieldSpec("num", "duration_ms"),
    "cost_usd": FieldSpec("num", "cost_usd"),
    "input_tokens": FieldSpec("num", "input_tokens"),
    "output_tokens": FieldSpec("num", "output_tokens"),
    "total_tokens": FieldSpec("num", "total_tokens"),
    "span_count": FieldSpec("num", "span_count"),
    "llm_call_count": FieldSpec("num", "llm_call_count"),
    "error_count": FieldSpec("num", "error_count"),
}
SPAN_ONLY_FIELDS = frozenset(SPAN_FIELDS) - frozenset(TRACE_FIELDS) - {"span_id", "parent_span_id"}


def field_names(target: Literal["spans", "traces"]) -> list[str]:
    names = SPAN_FIELDS if target == "spans" else {**TRACE_FIELDS, **{k: SPAN_FIELDS[k] for k in SPAN_ONLY_FIELDS}}
    return sorted(f"{name}.<path>" if spec.kind == "json" else name for name, spec in names.items())


# --------------------------------------------------------------------------- compiling


def compile_span_filter(node: Node, *, allow_content: bool) -> ColumnElement[bool]:
    """SQL over the `spans` table; without `allow_content`, a condition that could read content is a 400."""
    return _compile(node, lambda c: _span_condition(c, allow_content))


def compile_trace_filter(node: Node, *, allow_content: bool) -> ColumnElement[bool]:
    """SQL over the `traces` table; span-level fields become EXISTS over that trace's spans.
    Without `allow_content`, a condition that could read content is a 400."""
    return _compile(node, lambda c: _trace_condition(c, allow_content))


def _compile(node: Node, leaf: Callable[[Condition], ColumnElement[bool]]) -> ColumnElement[bool]:
    if isinstance(node, Condition):
        return leaf(node)
    parts = [_compile(item, leaf) for item in node.items]
    if node.kind == "not":
        return not_(parts[0])
    return and_(*parts) if node.kind == "and" else or_(*parts)


def _check_attribute_path(field: str, where: str) -> None:
    """A field that starts an attribute path (`attributes.` or `attributes[`) must be a whole one."""
    if field.startswith(("attributes.", "attributes[")) and not _split_field(field)[1]:
        raise InvalidInput.field(where, f"{_ATTRIBUTE_PATH_REASON}; got {field!r}", "body")


def _split_field(field: str) -> tuple[str, list[str]]:
    """`attributes.a.b` -> ("attributes", ["a", "b"]); other fields have no path."""
    if not field.startswith("attributes"):
        return field, []
    rest, path = field[len("attributes") :], []
    position = 0
    while position < len(rest):
        match = _ATTRIBUTE_SEGMENT.match(rest, position)
        if match is None:
            return field, []
        path.append(match.group("plain") or match.group("quoted"))
        position = match.end()
    return "attributes", path


def _lookup(condition: Condition, fields: Mapping[str, FieldSpec], allow_content: bool) -> tuple[FieldSpec, list[str]]:
    name, path = _split_field(condition.field)
    spec = fields.get(name)
    if spec is None or (spec.kind == "json") != bool(path):
        hint = "attributes needs a path, e.g. attributes.customer.tier" if name == "attributes" else "unknown field"
        raise InvalidInput.field(f"{condition.where}.field", f"{hint}: {condition.field!r}", "body")
    if len(path) > MAX_DEPTH:
        raise InvalidInput.field(f"{condition.where}.field", f"an attribute path has at most {MAX_DEPTH} keys", "body")
    if not allow_content and (spec.content or path_reaches_content(path)):
        field = condition.where if condition.source == "query" else f"{condition.where}.field"
        raise InvalidInput.field(field, "your role may not search prompt, completion or error text", condition.source)
    if condition.op not in OPS_BY_KIND[spec.kind]:
        allowed = ", ".join(sorted(OPS_BY_KIND[spec.kind]))
        raise InvalidInput.field(
            f"{condition.where}.op", f"{condition.op!r} does not apply to {name}; use {allowed}", "body"
        )
    return spec, path


def _span_condition(condition: Condition, allow_content: bool) -> ColumnElement[bool]:
    spec, path = _lookup(condition, SPAN_FIELDS, allow_content)
    return _column_condition(tables.spans, spec, path, condition)


def _trace_condition(condition: Condition, allow_content: bool) -> ColumnElement[bool]:
    name, _ = _split_field(condition.field)
    if name in TRACE_FIELDS:
        spec, path = _lookup(condition, TRACE_FIELDS, allow_content)
        return _column_condition(tables.traces, spec, path, condition)
    spec, path = _lookup(condition, SPAN_FIELDS, allow_content)
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
        values = _in_values(value, where)
        return or_(*(_single(column, spec, path, "eq", v, where) for v in values)) if values else false()
    return _single(column, spec, path, op, value, where)


def _in_values(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
        raise InvalidInput.field(where, f"`in` takes a list of at most {MAX_IN_VALUES} values", "body")
    return value


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
        _check_scalar(value, where)
        return json_path_condition(column, path, op, value)
    if spec.kind == "tags":
        text = _check_string(value, where)
        contains = json_array_contains(column, _canonical(text) if spec.canonical_model else text)
        return not_(contains) if op == "ne" else contains
    if spec.kind == "num":
        return _compare(column, op, _number_operand(column, _check_number(value, where)))
    if spec.kind == "time":
        return _compare(column, op, _check_time(value, where))
    text = _check_string(value, where)
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


def _check_string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise InvalidInput.field(where, f"must be a string of 1 to {MAX_STRING} characters", "body")
    return check_text(value, where, "body")


# The magnitude beyond which a number cannot be compared as a double (float(10**400) overflows).
_MAX_NUMBER = 1e308


def _check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput.field(where, "must be a number", "body")
    if not -_MAX_NUMBER <= value <= _MAX_NUMBER:  # JSON has no infinity; a 400-digit integer does parse
        raise InvalidInput.field(where, f"must be a number between -{_MAX_NUMBER:g} and {_MAX_NUMBER:g}", "body")
    return value


# Integers every integer column holds (PostgreSQL's integer is 32 bits).
_INT32 = range(-(2**31), 2**31)


def _number_operand(column: Any, number: float) -> Any:
    """`number` as the other side of a comparison with `column`: an integer an integer column holds
    as is (its index serves), anything else as a double, so that 2**40 or 1.5 against a 32-bit
    integer column, or 2**70 against any, compares as numbers instead of failing to bind."""
    if isinstance(column.type, Integer) and isinstance(number, int) and number in _INT32:
        return number
    return literal(float(number), Double())


def _check_scalar(value: Any, where: str) -> None:
    if isinstance(value, str):
        _check_string(value, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, where)
    elif not isinstance(value, bool):
        raise InvalidInput.field(where, "must be a string, a number or a boolean", "body")


def _check_time(value: Any, where: str) -> datetime:
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise InvalidInput.field(where, "must be an RFC 3339 timestamp", "body") from None
    return check_time(parsed, where, "body")
