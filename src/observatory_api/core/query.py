"""Limits on what a client controls: time windows and page sizes, checked the same way everywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec

from observatory_api.core.errors import InvalidInput

# Used with fullmatch: `$` alone would let a trailing newline through. The patterns go into the
# OpenAPI document as they are (JSON Schema patterns have no such `$`).
HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
HEX_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
# Identifiers a client names in filters (users, sessions, services): printable, bounded.
PLAIN_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
# Timestamps a client may name. Nothing stored is older than OTLP's Unix-epoch nanoseconds, and
# the arithmetic on a window (the default `from`, the previous period, buckets) must stay inside
# what Python's datetime holds: year 1 or 9999 would overflow it (a 500).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
TIME_RANGE_REASON = "must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z"
NUL_REASON = "must not contain NUL characters"


class WindowLimits(Protocol):
    """What bounds a time window (settings' `query` section is one)."""

    @property
    def default_range_hours(self) -> int: ...
    @property
    def max_range_days(self) -> int: ...


class PageLimits(Protocol):
    """What bounds a page size (settings' `query` section is one)."""

    @property
    def default_page_size(self) -> int: ...
    @property
    def max_page_size(self) -> int: ...


class TimeWindow(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime


def utc(value: datetime) -> datetime:
    """Timestamps without an offset are read as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_time(value: datetime, field: str, source: str = "query") -> datetime:
    """`value` in UTC, refused (400) outside EARLIEST..LATEST."""
    try:
        value = utc(value)
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        raise InvalidInput.field(field, TIME_RANGE_REASON, source) from None
    if not EARLIEST <= value < LATEST:
        raise InvalidInput.field(field, TIME_RANGE_REASON, source)
    return value


def resolve_window(
    start: datetime | None,
    end: datetime | None,
    limits: WindowLimits,
    *,
    now: datetime | None = None,
    source: str = "query",
) -> TimeWindow:
    """Default to the last `default_range_hours`; refuse inverted or over-long ranges."""
    now = now or datetime.now(UTC)
    end = check_time(end, "to", source) if end is not None else now
    default_start = end - timedelta(hours=limits.default_range_hours)
    start = check_time(start, "from", source) if start is not None else default_start
    if start >= end:
        raise InvalidInput.field("from", "must be earlier than `to`", source)
    if end - start > timedelta(days=limits.max_range_days):
        raise InvalidInput.field("from", f"the range may span at most {limits.max_range_days} days", source)
    return TimeWindow(start=start, end=end)


def resolve_limit(limit: int | None, limits: PageLimits) -> int:
    if limit is None:
        return limits.default_page_size
    if not 1 <= limit <= limits.max_page_size:
        raise InvalidInput.field("limit", f"must be between 1 and {limits.max_page_size}", "query")
    return limit


def check_trace_id(value: str, field: str = "trace_id", source: str = "path") -> str:
    if not HEX_TRACE_ID.fullmatch(value):
        raise InvalidInput.field(field, "must be 32 lowercase hexadecimal characters", source)
    return value


def check_span_id(value: str, field: str = "span_id", source: str = "query") -> str:
    if not HEX_SPAN_ID.fullmatch(value):
        raise InvalidInput.field(field, "must be 16 lowercase hexadecimal characters", source)
    return value


# The API's timestamp query parameters. Litestar would read a number there as Unix seconds
# (`to=0.0`); the API takes RFC 3339, as it documents.
TIME_PARAMETERS = ("from", "to")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def check_rfc3339(value: str, field: str, source: str = "query") -> None:
    """Refuse a number where an RFC 3339 timestamp is expected (the rest is left to the parser)."""
    if _NUMBER.fullmatch(value.strip()):
        raise InvalidInput.field(field, "must be an RFC 3339 timestamp, e.g. 2026-11-20T00:00:00Z", source)


def check_text(value: str, field: str, source: str = "query") -> str:
    """Refuse a NUL character: PostgreSQL cannot hold one in text, so it never matches anything
    stored, and binding it fails (a 500 before this check)."""
    if "\x00" in value:
        raise InvalidInput.field(field, NUL_REASON, source)
    return value


def check_plain(value: str | None, field: str, source: str = "query") -> str | None:
    if value is not None and not PLAIN_ID.fullmatch(value):
        raise InvalidInput.field(field, "must be 1 to 200 printable characters", source)
    return value
