"""Limits on what a client controls: time windows and page sizes, checked the same way everywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec

from observatory_api.errors import InvalidInput
from observatory_api.settings import QuerySettings

HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
HEX_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
# Identifiers a client names in filters (users, sessions, services): printable, bounded.
PLAIN_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


class TimeWindow(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime


def utc(value: datetime) -> datetime:
    """Timestamps without an offset are read as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_window(
    start: datetime | None,
    end: datetime | None,
    limits: QuerySettings,
    *,
    now: datetime | None = None,
) -> TimeWindow:
    """Default to the last `default_range_hours`; refuse inverted or over-long ranges."""
    now = now or datetime.now(UTC)
    end = utc(end) if end is not None else now
    start = utc(start) if start is not None else end - timedelta(hours=limits.default_range_hours)
    if start >= end:
        raise InvalidInput.field("from", "must be earlier than `to`", "query")
    if end - start > timedelta(days=limits.max_range_days):
        raise InvalidInput.field("from", f"the range may span at most {limits.max_range_days} days", "query")
    return TimeWindow(start=start, end=end)


def resolve_limit(limit: int | None, limits: QuerySettings) -> int:
    if limit is None:
        return limits.default_page_size
    if not 1 <= limit <= limits.max_page_size:
        raise InvalidInput.field("limit", f"must be between 1 and {limits.max_page_size}", "query")
    return limit


def check_trace_id(value: str, field: str = "trace_id", source: str = "path") -> str:
    if not HEX_TRACE_ID.match(value):
        raise InvalidInput.field(field, "must be 32 lowercase hexadecimal characters", source)
    return value


def check_span_id(value: str, field: str = "span_id", source: str = "query") -> str:
    if not HEX_SPAN_ID.match(value):
        raise InvalidInput.field(field, "must be 16 lowercase hexadecimal characters", source)
    return value


def check_plain(value: str | None, field: str, source: str = "query") -> str | None:
    if value is not None and not PLAIN_ID.match(value):
        raise InvalidInput.field(field, "must be 1 to 200 printable characters", source)
    return value
