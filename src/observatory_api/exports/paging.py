"""An export is the list endpoint's keyset walk, page after page, written as it is read: memory
holds one page whatever the size, and every page is read on its own short connection, so a client
that goes away leaves no transaction open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from observatory_api.core.pagination import Cursor, Page, encode_cursor, fingerprint
from observatory_api.core.query import TimeWindow
from observatory_api.exports.formats import PageWriter

R = TypeVar("R", covariant=True)


@dataclass(frozen=True, slots=True)
class DerivedPage(Generic[R]):
    """A page of other records (the spans of a page of traces) that continues where its source does."""

    data: Sequence[R]
    next_cursor: str | None
    has_more: bool


Fetch = Callable[[str | None], Awaitable[Page[Any]]]


def resume_cursor(
    *, sort: str, key_names: Sequence[str], key: Mapping[str, Any], window: TimeWindow, filters: Mapping[str, Any]
) -> str:
    """The list cursor that continues right after the row whose sort key is `key` (`after=`)."""
    values = [key[name].isoformat() if isinstance(key[name], datetime) else key[name] for name in key_names]
    cursor = Cursor(
        sort=sort, key=values, window_from=window.start, window_to=window.end, fingerprint=fingerprint(filters)
    )
    return encode_cursor(cursor)


# The most an export hands the server at once. granian queues a few body chunks per answer
# whatever their size: a slow client leaves that many chunks in the server's memory, and with
# chunks of a whole 2,000-row read (~2 MB) a 10 MB export was buffered whole instead of waiting
# for the client (tests/e2e/test_export_disconnect.py).
CHUNK_BYTES = 256 * 1024


async def stream_pages(first: Page[Any], fetch: Fetch, writer: PageWriter) -> AsyncIterator[bytes]:
    """`first` (read before the answer starts, so a bad request is still a 400), then each next
    page, in chunks of at most CHUNK_BYTES."""
    page = first
    while True:
        if page.data:
            written = writer.page(page.data)
            for start in range(0, len(written), CHUNK_BYTES):
                yield written[start : start + CHUNK_BYTES]
        if not page.has_more or page.next_cursor is None:
            break
        page = await fetch(page.next_cursor)
    tail = writer.finish()
    if tail:
        yield tail
