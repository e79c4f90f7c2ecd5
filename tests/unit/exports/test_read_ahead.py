"""`stream_pages` reads the next page while the current one is encoded and sent (the database and
this process work at once), one page ahead at most, and a stream closed early (the client went
away) leaves no read running."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from observatory_api.exports.paging import DerivedPage, stream_pages


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []


class Writer:
    def __init__(self, log: Log) -> None:
        self.log = log

    def page(self, records: Sequence[Any]) -> bytes:
        self.log.events.append(f"encode {records[0]}")
        return f"{records[0]}\n".encode()

    def finish(self) -> bytes:
        return b""


def pages(log: Log, count: int, *, hold: asyncio.Event | None = None) -> Any:
    async def fetch(cursor: str | None) -> DerivedPage[int]:
        number = int(cursor or 0)
        log.events.append(f"read {number} starts")
        if hold is not None:
            try:
                await hold.wait()
            except asyncio.CancelledError:
                log.events.append(f"read {number} cancelled")
                raise
        await asyncio.sleep(0)
        log.events.append(f"read {number} done")
        more = number + 1 < count
        return DerivedPage(data=[number], next_cursor=str(number + 1) if more else None, has_more=more)

    return fetch


def test_the_next_page_is_read_while_this_one_is_encoded() -> None:
    async def run() -> tuple[list[str], bytes]:
        log = Log()
        fetch = pages(log, 3)
        first = await fetch(None)
        body = b"".join([chunk async for chunk in stream_pages(first, fetch, Writer(log))])
        return log.events, body

    events, body = asyncio.run(run())
    assert body == b"0\n1\n2\n"
    # Read 1 is under way before page 0 is encoded, read 2 before page 1; never two ahead.
    assert events.index("read 1 starts") < events.index("encode 0")
    assert events.index("read 2 starts") < events.index("encode 1")
    assert events.index("read 1 done") < events.index("read 2 starts")


def test_a_stream_closed_early_cancels_the_read_under_way() -> None:
    async def run() -> list[str]:
        log = Log()
        fetch = pages(log, 5, hold=asyncio.Event())
        first = DerivedPage(data=[0], next_cursor="1", has_more=True)
        stream = stream_pages(first, fetch, Writer(log))
        assert await anext(stream) == b"0\n"  # the client takes page 0, then goes away
        await stream.aclose()
        log.events.append("closed")
        return log.events

    events = asyncio.run(run())
    assert events == ["read 1 starts", "encode 0", "read 1 cancelled", "closed"]
