"""The request time limit never leaves a response half sent: a deadline that falls between the
response start and its body still answers 503 problem JSON (granian answers a start without a body
with a bare 500)."""

from __future__ import annotations

import asyncio
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
    app = Litestar([stalls_after_start, streams], middleware=[RequestTimeoutMiddleware(0.3)])
    with TestClient(app) as client:
        response = client.get("/stalls-after-start")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"] == "the request took longer than 0.3 s and was cancelled"
        # A response that finishes in time streams as before, every part of it.
        streamed = client.get("/streams")
        assert streamed.status_code == 200 and streamed.json() == [1, 2]
