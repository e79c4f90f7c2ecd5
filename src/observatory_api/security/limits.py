"""The request time limit: a request that runs longer than `server.request_timeout_seconds` is
cancelled and answered 503 problem JSON (when nothing was sent yet), never left hanging.

The response start is held back until its first body part and both are sent together, shielded:
cancelled between the two, granian would have a status without a body and answer a bare 500
instead of this 503 (REST and GraphQL alike).

A streamed answer (an export, whose body comes in parts) has started well within the limit when
its first part goes out: from then on it may run `server.stream_timeout_seconds` in all, each of
its reads still bounded by the database's statement timeout."""

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

    def __init__(self, timeout_seconds: float, stream_timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.stream_timeout_seconds = stream_timeout_seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        held: Message | None = None
        sent = False

        async def holding(message: Message) -> None:
            nonlocal held, sent
            if message["type"] == "http.response.start":
                held = message
                return
            if held is not None:
                start, held = held, None
                with anyio.CancelScope(shield=True):
                    sent = True
                    await send(start)
                    await send(message)
                if message.get("more_body", False):
                    deadline.deadline = max(deadline.deadline, started + self.stream_timeout_seconds)
                return
            await send(message)

        failed_while_cancelled = False
        started = anyio.current_time()
        with anyio.move_on_after(self.timeout_seconds) as deadline:
            try:
                await next_app(scope, receive, holding)
            except Exception:
                # Raised while being cancelled (a driver turning the cancellation into its own
                # error): the time limit's answer, not a 500.
                if not deadline.cancel_called:
                    raise
                failed_while_cancelled = True
                logger.warning("error while cancelling a timed-out request", exc_info=True)
        if not (deadline.cancelled_caught or failed_while_cancelled):
            if held is not None:  # a start with no body: complete it rather than leave it open
                await send(held)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        logger.warning(
            "request timed out",
            extra={"path": scope.get("path_template") or scope.get("path"), "request_id": request_id(scope)},
        )
        if sent:
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
