"""Log shapes returned by the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class LogEntry(msgspec.Struct, kw_only=True):
    log_id: str
    time: datetime
    trace_id: str | None
    span_id: str | None
    service_name: str
    severity: str
    body: str | None
    attributes: dict[str, Any]
    # True when the caller's role may not see log bodies: body is null.
    content_redacted: bool = False


class LogPage(msgspec.Struct):
    data: list[LogEntry]
    next_cursor: str | None
    has_more: bool
