"""An export is the list endpoint's keyset walk, page after page, written as it is read: memory
holds one page whatever the size, and every page is read on its own short connection, so a client
that goes away leaves no transaction open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from observatory_api.exports.formats import Writer
from observatory_api.pagination import Cursor, encode_cursor, fingerprint
from observatory_api.query import TimeWindow

R = TypeVar("R", bound=msgspec.Struct, covariant=True)


class Page(Protocol, Generic[R]):
    @property
    def data(self) -> Sequence[R]: ...
    @property
    def next_cursor(self) -> str | None: ...
    @property
    def has_more(self) -> bool: ...


def resume_cursor(
    *, sort: str, key_names: Sequence[str], key: Mapping[str, Any], window: TimeWindow, filters: Mapping[str, Any]
) -> str:
    """The list cursor that continues right after the row whose sort key is `key` (`after=`)."""
    values = [key[name].isoformat() if isinstance(key[name], datetime) else key[name] for name in key_names]
    cursor = Cursor(
        sort=sort, key=values, window_from=window.start, window_to=window.end, fingerprint=fingerprint(filters)
    )
    return encode_cursor(cursor)


async def stream_pages(
    first: Page[msgspec.Struct],
    fetch: Callable[[str], Awaitable[Page[msgspec.Struct]]],
    writer: Writer,
) -> AsyncIterator[bytes]:
    """`first` (read before the answer starts, so a bad request is still a 400), then each next page."""
    page = first
    if not page.data:
        yield writer.empty()
    while page.data:
        yield writer.page(page.data)
        if not page.has_more or page.next_cursor is None:
            return
        page = await fetch(page.next_cursor)
