"""The filters shared by the list endpoints, expressed in the filter language so that one compiler
turns them into SQL for traces and for spans alike."""

from __future__ import annotations

from typing import Any

import msgspec

from observatory_api.core.filters import Condition, Group, Node
from observatory_api.core.query import TimeWindow, check_plain


class ListFilters(msgspec.Struct, frozen=True, kw_only=True):
    window: TimeWindow
    service: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    environment: str | None = None
    tag: str | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    q: str | None = None
    # Spans only.
    kind: str | None = None
    trace_id: str | None = None

    def checked(self, source: str) -> ListFilters:
        """These filters, refused (400, naming the field and `source`) when an identifier holds a
        control character or more than 200 characters. REST (`query`) and GraphQL (`filter`) both
        call it, so the two check the same fields the same way."""
        for name in IDENTIFIERS:
            check_plain(getattr(self, name), name, source)
        return self

    def fingerprint_fields(self) -> dict[str, Any]:
        """Everything but the window, which the cursor carries itself."""
        data = msgspec.structs.asdict(self)
        data.pop("window")
        return data

    def page(self, limit: int, cursor: str | None) -> ListPage:
        """The page of the list these filters select, `limit` rows after `cursor`."""
        return ListPage(
            window=self.window,
            node=filters_to_node(self),
            fingerprint=self.fingerprint_fields(),
            limit=limit,
            cursor=cursor,
        )


class ListPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page a list (traces, spans) asks its repository for: the time window, the filters as one
    tree, what its cursors are bound to (a cursor given under other filters is refused), its size
    and the cursor it continues after."""

    window: TimeWindow
    node: Node | None
    fingerprint: dict[str, Any]
    limit: int
    cursor: str | None


# The fields that only lists of spans take (REST: spans/params.py; GraphQL: SpanFilter).
SPAN_ONLY = ("kind", "trace_id")
# The fields that hold a client-named identifier (a model name included: it is compared as text).
IDENTIFIERS = ("service", "model", "provider", "user_id", "session_id", "environment", "tag")
_EQUALS = ("service", "model", "provider", "status", "user_id", "session_id", "environment", "tag", "kind", "trace_id")
_BOUNDS = (
    ("min_duration_ms", "duration_ms", "gte"),
    ("max_duration_ms", "duration_ms", "lte"),
    ("min_cost", "cost_usd", "gte"),
    ("max_cost", "cost_usd", "lte"),
)


def filters_to_node(filters: ListFilters) -> Node | None:
    """The query-string filters as one `and` of conditions (None when there are none)."""
    conditions: list[Node] = []
    for name in _EQUALS:
        value = getattr(filters, name)
        if value is not None:
            conditions.append(Condition(field=name, op="eq", value=value, where=name, source="query"))
    for name, field, op in _BOUNDS:
        value = getattr(filters, name)
        if value is not None:
            conditions.append(Condition(field=field, op=op, value=value, where=name, source="query"))
    if filters.q:
        text = (
            Condition(field="input", op="contains", value=filters.q, where="q", source="query"),
            Condition(field="output", op="contains", value=filters.q, where="q", source="query"),
        )
        conditions.append(Group("or", text))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else Group("and", tuple(conditions))
