"""The request time limit never leaves a response half sent: a deadline that falls between the
response start and its body still answers 503 problem JSON (granian answers a start without a body
with a bare 500)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from litestar import Litestar, get
from litestar.response import Stream
from litestar.testing import TestClient

from observatory_api.security.limits import RequestTimeoutMiddleware


async def _late_first_chunk() -> AsyncIterator[bytes]:
    await asyncio.sleep(5)
    yield b"late"


@get("/stalls-after-start")
async def stalls_after_start() -> Stream:
    # Litestar sends the status and headers, then waits for the first chunk.
    return Stream(_late_first_chunk(), media_type="application/json")


@get("/streams")
async def streams() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"[1,", b"2]"):
            await asyncio.sleep(0.01)
            yield part

    return Stream(chunks(), media_type="application/json")


def test_a_deadline_between_the_start_and_the_body_still_answers_503() -> None:
    app = Litestar([stalls_after_start, streams], middleware=[RequestTimeoutMiddleware(0.3, 2.0)])
    with TestClient(app) as client:
        response = client.get("/stalls-after-start")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"] == "the request took longer than 0.3 s and was cancelled"
        # A response that finishes in time streams as before, every part of it.
        streamed = client.get("/streams")
        assert streamed.status_code == 200 and streamed.json() == [1, 2]


def _slow_stream(parts: int, pause: float) -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"0\n"
        for n in range(1, parts):
            await asyncio.sleep(pause)
            yield f"{n}\n".encode()

    return Stream(chunks(), media_type="application/x-ndjson")


@get("/export-in-time")
async def export_in_time() -> Stream:
    return _slow_stream(parts=6, pause=0.1)  # 0.5 s: past the request limit, within the stream's


@get("/export-forever")
async def export_forever() -> Stream:
    return _slow_stream(parts=1000, pause=0.1)


def test_a_stream_that_started_runs_past_the_request_limit_until_the_stream_limit() -> None:
    app = Litestar([export_in_time, export_forever], middleware=[RequestTimeoutMiddleware(0.3, 1.0)])
    with TestClient(app) as client:
        whole = client.get("/export-in-time")
        assert whole.status_code == 200
        assert whole.text.split() == [str(n) for n in range(6)]
        # Cut at the stream limit (the whole stream would take 100 s): no 503 once it has begun,
        # and never more than a start of it.
        started = time.monotonic()
        cut = client.get("/export-forever")
        assert time.monotonic() - started < 30
        assert cut.status_code == 200
        received = cut.text.split()
        assert received == [str(n) for n in range(len(received))] and len(received) < 1000
