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
# The columns in the order of Span's fields, so that a row is a Span's positional arguments: no
# dict and no keyword matching per row (with the datetime processors, the largest cost of an
# export after reading the rows: bench/RESULTS.md).
_STORED = tuple(name for name in Span.__struct_fields__ if name in _s.c)
_FULL: list[ColumnElement[Any]] = [_s.c[name] for name in _STORED]
_REDACTED: list[ColumnElement[Any]] = [
    null().label(name) if name in SPAN_CONTENT_COLUMNS else _s.c[name] for name in _STORED
]
_ATTRIBUTES = _STORED.index("attributes")


def span_columns(*, allow_content: bool) -> list[ColumnElement[Any]]:
    """Every column of `spans`, in Span's field order, with the content columns as NULL when
    `allow_content` is false."""
    return _FULL if allow_content else _REDACTED


def span_from_row(row: Any, *, allow_content: bool, make: type[S]) -> S:
    """A row selected with exactly `span_columns(allow_content=...)` as a `make` (Span or SpanNode)."""
    if allow_content:
        return make(*row)
    values = list(row)
    values[_ATTRIBUTES] = without_content(values[_ATTRIBUTES])
    values.append(True)  # content_redacted, the field after the stored ones
    return make(*values)
