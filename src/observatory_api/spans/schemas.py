"""Span shapes returned by the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Span(msgspec.Struct):
    # Positional construction is allowed (spans.rows builds a Span from a row in field order);
    # every field without a default comes first, so SpanNode can add `children` after them.
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service_name: str
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    provider: str | None
    model: str | None  # as the instrumentation sent it (a dated snapshot, a prefixed name)
    # The canonical model, `<maker>/<family>` (e.g. openai/gpt-4o-mini): what model views group by.
    model_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_output_tokens: int | None
    cost_usd: float | None  # null: no price known (or no usage): unpriced, not free
    # Where the cost came from: instrumentation, catalogue, genai-prices, or none (null: stored
    # before sources were recorded).
    cost_source: str | None
    time_to_first_token_ms: float | None
    status: str
    status_message: str | None
    finish_reason: str | None
    user_id: str | None
    session_id: str | None
    environment: str | None
    tags: list[str]
    input: str | None
    output: str | None
    attributes: dict[str, Any]
    # True when the caller's role may not see prompts and completions: input and output are null.
    content_redacted: bool = False


class SpanNode(Span, kw_only=True):
    """A span with its children nested under it, as in a trace's tree."""

    children: list[SpanNode] = msgspec.field(default_factory=list)


class SpanPage(msgspec.Struct):
    data: list[Span]
    next_cursor: str | None
    has_more: bool
