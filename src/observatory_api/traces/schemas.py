"""Trace shapes returned by the API, and the filters and search body they accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from observatory_api.logs.schemas import LogEntry
from observatory_api.openapi_docs import documented, nullable_filter
from observatory_api.spans.schemas import SpanNode

TraceSort = Literal["start_time", "-start_time", "duration", "-duration", "cost", "-cost"]


class TraceSummary(msgspec.Struct, kw_only=True):
    trace_id: str
    name: str
    service_name: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    span_count: int
    llm_call_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float  # of the priced calls only
    unpriced_calls: int  # successful model calls without a cost (no price or no usage known)
    status: str
    user_id: str | None
    session_id: str | None
    environment: str | None
    provider: str | None
    model: str | None
    models: list[str]
    tags: list[str]


class TraceDetail(TraceSummary, kw_only=True):
    """The summary, all spans as a tree (roots first, children nested) and the trace's logs."""

    spans: list[SpanNode]
    logs: list[LogEntry]


class TracePage(msgspec.Struct):
    data: list[TraceSummary]
    next_cursor: str | None
    has_more: bool


class TraceSearch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /traces/search`.

    `filter` is a boolean tree: `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`, or a condition
    `{"field": "attributes.customer.tier", "op": "eq", "value": "gold"}` with op one of eq, ne, in,
    gt, gte, lt, lte, contains, exists.
    """

    filter: Annotated[dict[str, Any], documented(one_of=nullable_filter("traces"))] | None = None
    from_: datetime | None = msgspec.field(default=None, name="from")
    to: datetime | None = None
    sort: TraceSort = "-start_time"
    # Checked by `query.resolve_limit` (query.max_page_size, 1000 by default) and `decode_cursor`.
    limit: Annotated[int, documented(minimum=1, maximum=1000)] | None = None
    cursor: Annotated[str, documented(max_length=2048)] | None = None
