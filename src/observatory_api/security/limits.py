"""The request time limit: a request that runs longer than `server.request_timeout_seconds` is
cancelled and answered 503 problem JSON (when nothing was sent yet), never left hanging."""

from __future__ import annotations

import logging

import anyio
import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from observatory_api.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Problem
from observatory_api.observability.request_id import request_id

logger = logging.getLogger("observatory_api.security.limits")


class RequestTimeoutMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with anyio.move_on_after(self.timeout_seconds) as deadline:
            await next_app(scope, receive, tracking)
        if not deadline.cancelled_caught:
            return
        logger.warning(
            "request timed out",
            extra={"path": scope.get("path_template") or scope.get("path"), "request_id": request_id(scope)},
        )
        if started:
            return
        body = msgspec.json.encode(
            Problem(
                type=PROBLEM_BASE + "unavailable",
                title="Service unavailable",
                status=503,
                detail=f"the request took longer than {self.timeout_seconds:g} s and was cancelled",
                instance=scope.get("path"),
                request_id=request_id(scope),
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
