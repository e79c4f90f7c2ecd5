"""Session shapes returned by the API."""

from __future__ import annotations

from datetime import datetime

import msgspec

from observatory_api.traces.schemas import TraceSummary


class SessionSummary(msgspec.Struct, kw_only=True):
    session_id: str
    user_id: str | None
    environment: str | None
    first_seen: datetime
    last_seen: datetime
    trace_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float  # of the priced calls only
    unpriced_calls: int  # successful model calls without a cost (no price or no usage known)


class SessionDetail(SessionSummary, kw_only=True):
    """The session and its traces in time order (paged with `limit` and `cursor`)."""

    traces: list[TraceSummary]
    next_cursor: str | None
    has_more: bool


class SessionPage(msgspec.Struct):
    data: list[SessionSummary]
    next_cursor: str | None
    has_more: bool
