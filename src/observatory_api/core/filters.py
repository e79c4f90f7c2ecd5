"""The boolean filter language of `POST /traces/search` and metric queries: its shape and fields.

A filter is a tree of `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}` and conditions
`{"field": "model", "op": "eq", "value": "gpt-4o"}`. Fields are looked up in a whitelist per
target (spans or traces). Attributes are addressed by path: `attributes.customer.tier`, or
`attributes["llm.temperature"]` for keys that hold dots. db/filters.py compiles a checked tree
to SQL over those columns and bound values only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from observatory_api.core.content import path_reaches_content
from observatory_api.core.errors import InvalidInput
from observatory_api.core.records import TOKEN_COUNTS
from observatory_api.core.vocabulary import SPAN_KINDS, SPAN_STATUSES

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
# A whole attribute field, for the OpenAPI document (`split_field` parses it).
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
    check_attribute_path(field, f"{where}.field")
    if op not in OPS_BY_KIND["json"]:
        raise InvalidInput.field(f"{where}.op", f"unknown operator {op!r}", "body")
    if op != "exists" and "value" not in raw:
        raise InvalidInput.field(f"{where}.value", "is required", "body")
    return Condition(field=field, op=op, value=raw.get("value", True), where=where)


def check_attribute_path(field: str, where: str) -> None:
    """A field that starts an attribute path (`attributes.` or `attributes[`) must be a whole one."""
    if field.startswith(("attributes.", "attributes[")) and not split_field(field)[1]:
        raise InvalidInput.field(where, f"{_ATTRIBUTE_PATH_REASON}; got {field!r}", "body")


def split_field(field: str) -> tuple[str, list[str]]:
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


def _same_name(kind: FieldKind, *columns: str, content: bool = False) -> dict[str, FieldSpec]:
    """Fields named as their column."""
    return {column: FieldSpec(kind, column, content=content) for column in columns}


_CONTEXT = _same_name("str", "user_id", "session_id", "environment")
# Start, duration, cost and tokens: a span's own, a trace summary's the sum over its spans.
_MEASURES = {
    **_same_name("time", "start_time"),
    **_same_name("num", "duration_ms", "cost_usd", "input_tokens", "output_tokens", "total_tokens"),
}

SPAN_FIELDS: Mapping[str, FieldSpec] = {
    **_same_name("str", "trace_id", "span_id", "parent_span_id"),
    "service": FieldSpec("str", "service_name"),
    "name": FieldSpec("str", "name"),
    "kind": FieldSpec("enum", "kind", SPAN_KINDS),
    "status": FieldSpec("enum", "status", SPAN_STATUSES),
    "status_message": FieldSpec("str", "status_message", content=True),
    "provider": FieldSpec("str", "provider"),
    "model": FieldSpec("str", "model_id", canonical_model=True),
    "model_name": FieldSpec("str", "model"),
    **_same_name("str", "cost_source", "finish_reason"),
    **_CONTEXT,
    "tag": FieldSpec("tags", "tags"),
    **_MEASURES,
    # The token counts besides input, output and total (in _MEASURES).
    **_same_name("num", *TOKEN_COUNTS[3:], "time_to_first_token_ms"),
    **_same_name("text", "input", "output", content=True),
    "attributes": FieldSpec("json", "attributes"),
}
# Trace-level fields read the summary row; any other span field matches a trace when one of
# its spans matches (each condition on its own).
TRACE_FIELDS: Mapping[str, FieldSpec] = {
    **_same_name("str", "trace_id", "name"),
    "service": FieldSpec("str", "service_name"),
    "status": FieldSpec("enum", "status", SPAN_STATUSES),
    "provider": FieldSpec("str", "provider"),
    **_CONTEXT,
    "tag": FieldSpec("tags", "tags"),
    "model": FieldSpec("tags", "models", canonical_model=True),
    "unpriced_calls": FieldSpec("num", "unpriced_calls"),
    **_MEASURES,
    **_same_name("num", "span_count", "llm_call_count", "error_count"),
}
SPAN_ONLY_FIELDS = frozenset(SPAN_FIELDS) - frozenset(TRACE_FIELDS) - {"span_id", "parent_span_id"}


def field_names(target: Literal["spans", "traces"]) -> list[str]:
    names = SPAN_FIELDS if target == "spans" else {**TRACE_FIELDS, **{k: SPAN_FIELDS[k] for k in SPAN_ONLY_FIELDS}}
    return sorted(f"{name}.<path>" if spec.kind == "json" else name for name, spec in names.items())


def lookup(condition: Condition, fields: Mapping[str, FieldSpec], allow_content: bool) -> tuple[FieldSpec, list[str]]:
    name, path = split_field(condition.field)
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
