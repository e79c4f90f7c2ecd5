"""An export is the list endpoint's keyset walk, page after page, written as it is read: memory
holds two pages whatever the size (the one sent, the next one read), and every page is read on its
own short connection, so a client that goes away leaves no transaction open."""

from __future__ import annotations

import asyncio
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
    page, in chunks of at most CHUNK_BYTES.

    Each next page is read while this one is encoded and sent: the database works (executes,
    turns jsonb into text, sends) while this process encodes, instead of each waiting for the
    other. One page ahead at most: memory holds two reads' rows, not one."""
    page: Page[Any] | None = first
    ahead: asyncio.Task[Page[Any]] | None = None
    try:
        while page is not None:
            if page.has_more and page.next_cursor is not None:
                ahead = asyncio.ensure_future(fetch(page.next_cursor))
                await asyncio.sleep(0)  # the read starts (its query sent) before the encoding
            written = writer.page(page.data) if page.data else b""
            page = None  # its rows are encoded: freed before the next read's arrive
            for start in range(0, len(written), CHUNK_BYTES):
                yield written[start : start + CHUNK_BYTES]
            if ahead is not None:
                page, ahead = await ahead, None
        tail = writer.finish()
        if tail:
            yield tail
    finally:
        if ahead is not None:  # the client went away (or a read failed) with a read under way
            ahead.cancel()
            await asyncio.wait([ahead])  # given back its connection before the answer ends
            if not ahead.cancelled():
                ahead.exception()  # retrieved: a read that failed as it was cancelled is no error of the stream
