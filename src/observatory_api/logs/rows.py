"""`logs` rows as the caller's role may see them: the one way rows become LogEntry Structs.

Without content access the body is not read (NULL in its place) and content attributes are
dropped (core.content), so no caller can forget to redact.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, null

from observatory_api.core.content import LOG_CONTENT_COLUMNS, without_content
from observatory_api.db import tables
from observatory_api.logs.schemas import LogEntry

_l = tables.logs
_FULL: list[ColumnElement[Any]] = list(_l.c)
_REDACTED: list[ColumnElement[Any]] = [
    null().label(column.name) if column.name in LOG_CONTENT_COLUMNS else column for column in _l.c
]
# The names of both selections, in order: zipped with a row's values, cheaper than `row._mapping`.
_NAMES = tuple(column.name for column in _l.c)


def log_columns(*, allow_content: bool) -> list[ColumnElement[Any]]:
    """Every column of `logs`, with the body as NULL when `allow_content` is false."""
    return _FULL if allow_content else _REDACTED


def log_from_row(row: Any, *, allow_content: bool) -> LogEntry:
    """A row selected with `log_columns(allow_content=...)` (first, in order) as a LogEntry."""
    values = dict(zip(_NAMES, row, strict=False))
    if not allow_content:
        values["attributes"] = without_content(values["attributes"])
        values["content_redacted"] = True
    return LogEntry(**values)
