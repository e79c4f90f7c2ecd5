"""Keyset pagination on SQLAlchemy selects: stable, index-friendly, and safe while rows arrive."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import BindParameter, Column, ColumnElement, Integer, Row, Select, and_, bindparam, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.core.errors import InvalidInput
from observatory_api.core.listing import ListPage
from observatory_api.core.pagination import Cursor, decode_cursor, encode_cursor, fingerprint
from observatory_api.core.query import TimeWindow, check_text, check_time

# The walk's values are named parameters, bound at execution (`Keyset.parameters`), so that a
# statement's SQL and cache key depend on its shape only: a repository can build the statement of
# a shape once (`shape=` of `fetch`) instead of on every request, where building it and its cache
# key cost more than running it (bench/RESULTS.md, "Statements built once").
_FROM: BindParameter[Any] = bindparam("keyset_from")
_TO: BindParameter[Any] = bindparam("keyset_to")
_LIMIT = bindparam("keyset_limit", type_=Integer)
_OFFSET = bindparam("keyset_offset", type_=Integer)
_BOUND: BindParameter[Any] = bindparam("keyset_bound")
# The statements of each shape a repository named (`Keyset._statements`).
_Statements = tuple[Select[Any] | None, Select[Any] | None, Select[Any]]
_SHAPES: dict[Hashable, _Statements] = {}
_MAX_SHAPES = 256


class Keyset:
    """One page of a keyset walk over `columns` (all in one direction; the last ones break ties);
    a `sort` of `-x` walks them descending, `x` ascending.

    With a cursor, the walk keeps the time window of its first page and refuses a cursor issued
    for another sort or other filters.
    """

    def __init__(
        self,
        *,
        sort: str,
        columns: Sequence[Column[Any]],
        window: TimeWindow,
        filters: dict[str, Any],
        cursor: str | None,
        limit: int,
    ) -> None:
        self.sort = sort
        self.columns = list(columns)
        self.descending = sort.startswith("-")
        self.limit = limit
        self.window = window
        self._digest = fingerprint(filters)
        self._after: list[Any] | None = None
        if cursor is not None:
            decoded = decode_cursor(cursor, sort=sort, fingerprint=self._digest, key_length=len(self.columns))
            self.window = TimeWindow(start=decoded.window_from, end=decoded.window_to)
            self._after = [_typed(column, value) for column, value in zip(self.columns, decoded.key, strict=True)]

    @classmethod
    def of_page(cls, page: ListPage, *, sort: str, columns: Sequence[Column[Any]]) -> Keyset:
        """The walk a list page asks for."""
        window, filters = page.window, page.fingerprint
        return cls(sort=sort, columns=columns, window=window, filters=filters, cursor=page.cursor, limit=page.limit)

    def within(self, column: ColumnElement[Any]) -> ColumnElement[bool]:
        """`column` in the walk's time window (for a cursor, the window of its first page)."""
        return and_(column >= _FROM, column < _TO)

    def parameters(self) -> dict[str, Any]:
        """The values of the walk's named parameters (window, page size, cursor key)."""
        values: dict[str, Any] = {
            "keyset_from": self.window.start,
            "keyset_to": self.window.end,
            "keyset_limit": self.limit + 1,
            "keyset_offset": self.limit,
        }
        for index, value in enumerate(self._after or ()):
            values[f"keyset_after_{index}"] = value
        return values

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        """Continue after the cursor's key, in order, one row more than the page to learn `has_more`
        (executed with `parameters()`).

        A row-value comparison `(a, b) < (x, y)` uses a multi-column index on PostgreSQL and SQLite.
        """
        ordering = [column.desc() if self.descending else column.asc() for column in self.columns]
        return self._continued(stmt).order_by(*ordering).limit(_LIMIT)

    async def fetch(
        self,
        conn: AsyncConnection,
        stmt: Select[Any] | Callable[[], Select[Any]],
        *,
        time_column: Column[Any] | None = None,
        narrow: bool = False,
        shape: Hashable | None = None,
    ) -> Sequence[Row[Any]]:
        """The rows of `apply(stmt)`. Narrowed first when `narrow` (the repositories ask for it on
        TimescaleDB) and the walk's first column is the hypertable's `time_column`.

        With a `shape`, `stmt` (a callable building the statement) is built once per shape: the
        caller names in `shape` everything the statement's structure depends on besides the walk
        (its columns, its conditions), and binds every value through the walk's parameters.

        On compressed chunks a page sorted by time and its tie-breakers decompresses every row of
        the chunks in the window and sorts them (TimescaleDB does not merge its batches for an
        order with columns it does not compress by). Narrowed, the time of the page's last row is
        read first (one column: cheap, vectorised), and the page is then read from that time on:
        only the batches from there are decompressed (the 1-day spans page: 64-110 ms -> 12 ms
        on 33,000 compressed spans a day). Every row of the page is at or after that time, so the
        page is the same.
        """
        narrowed = narrow and self.columns[0] is time_column
        key = None if shape is None else (shape, self.sort, self._after is not None, narrowed)
        statements = _SHAPES.get(key) if key is not None else None
        if statements is None:
            statements = self._statements(stmt() if callable(stmt) else stmt, narrowed)
            if key is not None:
                if len(_SHAPES) >= _MAX_SHAPES:
                    _SHAPES.clear()
                _SHAPES[key] = statements
        last_time, from_last, page = statements
        parameters = self.parameters()
        if last_time is not None and from_last is not None:
            bound = (await conn.execute(last_time, parameters)).scalar_one_or_none()
            if bound is not None:
                page, parameters["keyset_bound"] = from_last, bound
        rows: Sequence[Row[Any]] = (await conn.execute(page, parameters)).all()
        return rows

    def _statements(self, stmt: Select[Any], narrowed: bool) -> _Statements:
        """The statements of a fetch: when narrowed, the last time of the page and the page from
        that time on (else None, None); then the page."""
        if not narrowed:
            return None, None, self.apply(stmt)
        first = self.columns[0]
        order = first.desc() if self.descending else first.asc()
        last_time = self._continued(stmt).with_only_columns(first).order_by(order).offset(_OFFSET).limit(1)
        from_last = self.apply(stmt.where(first >= _BOUND if self.descending else first <= _BOUND))
        return last_time, from_last, self.apply(stmt)

    def _continued(self, stmt: Select[Any]) -> Select[Any]:
        if self._after is None:
            return stmt
        key = tuple_(*(_after(index, column) for index, column in enumerate(self.columns)))
        position = tuple_(*self.columns)
        return stmt.where(position < key if self.descending else position > key)

    def page(self, rows: Sequence[Row[Any]]) -> tuple[Sequence[Row[Any]], str | None, bool]:
        """The rows of this page, the cursor of the next one (or None), and whether there is more."""
        has_more = len(rows) > self.limit
        rows = rows[: self.limit]
        if not has_more:
            return rows, None, False
        last = rows[-1]._mapping
        key = [_plain(last[column.name]) for column in self.columns]
        cursor = Cursor(
            sort=self.sort, key=key, window_from=self.window.start, window_to=self.window.end, fingerprint=self._digest
        )
        return rows, encode_cursor(cursor), True


def _after(index: int, column: Column[Any]) -> BindParameter[Any]:
    return bindparam(f"keyset_after_{index}", type_=column.type)


# What a key value must be to bind against its column on both databases (a cursor is not signed).
_BINDABLE_INTEGERS = range(-(2**31), 2**31)


def _typed(column: Column[Any], value: Any) -> Any:
    try:
        typed = msgspec.convert(value, column.type.python_type)
        if isinstance(typed, datetime):
            typed = check_time(typed, "cursor")
        elif isinstance(typed, str):
            check_text(typed, "cursor")
        elif isinstance(typed, float) and not math.isfinite(typed):
            raise ValueError("not a finite number")
        elif isinstance(typed, int) and typed not in _BINDABLE_INTEGERS:
            raise ValueError("out of the column's range")
    except (msgspec.ValidationError, NotImplementedError, ValueError, InvalidInput):
        raise InvalidInput.field("cursor", "is not a cursor this service issued", "query") from None
    return typed


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
