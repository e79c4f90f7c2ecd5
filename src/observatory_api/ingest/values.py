"""Checked conversions of OTLP values into column values, shared by the span and log mappings.

A value that is not usable is refused here with the reason: a record outside the time range is
rejected whole (RejectedRecord), a token count or cost that is not one is dropped and noted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from observatory_api.ingest.limits import EARLIEST, EARLIEST_NS, LATEST, LATEST_NS, RejectedRecord

MAX_TEXT = 1_000_000
MAX_INT32 = 2**31 - 1
_TIME_RANGE = f"{EARLIEST:%Y-%m-%d}..{LATEST:%Y-%m-%d}"


def as_int(value: Any, column: str, drop: Callable[[str, str], None]) -> int | None:
    """A token count, or None (the value dropped and noted) when it is not one."""
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_INT32:  # the common case, checked cheaply
        return value
    number = None
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            floating = float(value)
        except (ValueError, OverflowError):  # "abc"; an int too large for a float
            floating = math.nan
        if math.isfinite(floating):
            number = int(value) if isinstance(value, int) else int(floating)
    if number is None or not 0 <= number <= MAX_INT32:
        drop(column, f"{column} must be a whole number from 0 to {MAX_INT32}")
        return None
    return number


def as_float(value: Any, column: str, drop: Callable[[str, str], None]) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:  # NaN, infinity or negative
        drop(column, f"{column} must be a finite non-negative number")
        return None
    return number


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:MAX_TEXT]


def timestamp_of(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC)


def check_time(nanoseconds: int, name: str) -> None:
    if not EARLIEST_NS <= nanoseconds < LATEST_NS:
        shown = str(nanoseconds) if len(str(nanoseconds)) <= 40 else f"{str(nanoseconds)[:20]}..."
        raise RejectedRecord("invalid_timestamp", f"{name} {shown} is outside {_TIME_RANGE}")
