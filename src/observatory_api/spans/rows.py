"""`spans` rows as the caller's role may see them: the one way rows become Span Structs.

Without content access the content columns are not even read (NULL in their place) and content
attributes are dropped (core.content), so no caller can forget to redact.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, null

from observatory_api.core.content import SPAN_CONTENT_COLUMNS, without_content
from observatory_api.db import tables
from observatory_api.spans.schemas import Span

S = TypeVar("S", bound=Span)
_s = tables.spans
_FULL: list[ColumnElement[Any]] = list(_s.c)
_REDACTED: list[ColumnElement[Any]] = [
    null().label(column.name) if column.name in SPAN_CONTENT_COLUMNS else column for column in _s.c
]
# The names of both selections, in order: zipped with a row's values, cheaper than `row._mapping`.
_NAMES = tuple(column.name for column in _s.c)


def span_columns(*, allow_content: bool) -> list[ColumnElement[Any]]:
    """Every column of `spans`, with the content columns as NULL when `allow_content` is false."""
    return _FULL if allow_content else _REDACTED


def span_from_row(row: Any, *, allow_content: bool, make: type[S]) -> S:
    """A row selected with `span_columns(allow_content=...)` (first, in order) as a `make` (Span or SpanNode)."""
    values = dict(zip(_NAMES, row, strict=False))
    if not allow_content:
        values["attributes"] = without_content(values["attributes"])
        values["content_redacted"] = True
    return make(**values)
