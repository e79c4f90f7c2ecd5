"""The values a filter condition compares with, checked before they are bound: strings, numbers,
timestamps, `in` lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from observatory_api.core.errors import InvalidInput
from observatory_api.core.filters import MAX_IN_VALUES, MAX_STRING
from observatory_api.core.query import check_text, check_time


def in_values(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
        raise InvalidInput.field(where, f"`in` takes a list of at most {MAX_IN_VALUES} values", "body")
    return value


def check_string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise InvalidInput.field(where, f"must be a string of 1 to {MAX_STRING} characters", "body")
    return check_text(value, where, "body")


# The magnitude beyond which a number cannot be compared as a double (float(10**400) overflows).
_MAX_NUMBER = 1e308


def check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput.field(where, "must be a number", "body")
    if not -_MAX_NUMBER <= value <= _MAX_NUMBER:  # JSON has no infinity; a 400-digit integer does parse
        raise InvalidInput.field(where, f"must be a number between -{_MAX_NUMBER:g} and {_MAX_NUMBER:g}", "body")
    return value


def check_scalar(value: Any, where: str) -> None:
    if isinstance(value, str):
        check_string(value, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        check_number(value, where)
    elif not isinstance(value, bool):
        raise InvalidInput.field(where, "must be a string, a number or a boolean", "body")


def check_timestamp(value: Any, where: str) -> datetime:
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise InvalidInput.field(where, "must be an RFC 3339 timestamp", "body") from None
    return check_time(parsed, where, "body")
