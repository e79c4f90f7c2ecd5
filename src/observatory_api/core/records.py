"""The records the writer stores: one Struct per row of `spans` and `logs`.

Field order is the table's column order, so a record converts to a row with
`msgspec.structs.astuple` (a unit test keeps the two in step).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from observatory_api.core.vocabulary import LogSeverity, SpanKind, SpanStatus

# Timestamps must carry a timezone: decoding rejects naive ones, the database layer refuses them.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


# The token counts a model call reports, as spans store them (in their column order).
TOKEN_COUNTS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)


def new_log_id() -> str:
    """A random 32-hex-character log id, for producers that do not send their own."""
    return uuid.uuid4().hex


class SpanRecord(msgspec.Struct, kw_only=True):
    """One row of `spans`; token counts follow the convention of `models.pricing.price_usage`."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    service_name: str
    name: str
    kind: SpanKind
    start_time: AwareDatetime
    end_time: AwareDatetime
    duration_ms: float
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    cost_usd: float | None = None
    time_to_first_token_ms: float | None = None
    status: SpanStatus = "unset"
    status_message: str | None = None
    finish_reason: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    environment: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    input: str | None = None
    output: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    # Set by the writer (`storage.costs`): the canonical model (`core.canonical_models`) and where
    # `cost_usd` came from ("instrumentation", "catalogue", "genai-prices" or "none").
    model_id: str | None = None
    cost_source: str | None = None


class LogRecord(msgspec.Struct, kw_only=True):
    """One row of `logs`; `log_id` is generated when the producer has none."""

    time: AwareDatetime
    log_id: str = msgspec.field(default_factory=new_log_id)
    trace_id: str | None = None
    span_id: str | None = None
    service_name: str
    severity: LogSeverity
    body: str
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
