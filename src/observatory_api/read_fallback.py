"""A read that a replica failed (connection lost or refused) is answered again from the primary.

ASGI middleware, innermost of the app's middleware (authentication and rate limits ran once, outside):
each request gets a `ReadAttempt`; when the replica's error listener (db/replicas.py) marks it
failed before the response has started, what the app answered (a 503, or GraphQL's errors) is
thrown away and the request runs once more with every read on the primary. The request body is
replayed from what the first run received. An answer already streaming (an export) cannot be
taken back: a replica lost in mid-stream cuts it, as a lost primary would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from observatory_api.db.replicas import READ_ATTEMPT, ReadAttempt

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send


class ReplicaFallbackMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, on_retry: Callable[[], object] = lambda: None) -> None:
        self.on_retry = on_retry

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        attempt = ReadAttempt()
        received: list[ReceiveMessage] = []
        started = discarded = False

        async def recording_receive() -> ReceiveMessage:
            message = await receive()
            received.append(message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, discarded
            if message["type"] == "http.response.start" and not started:
                started = True
                discarded = attempt.replica_failed
            if not discarded:
                await send(message)

        token = READ_ATTEMPT.set(attempt)
        try:
            await next_app(scope, recording_receive, guarded_send)
        finally:
            READ_ATTEMPT.reset(token)
        if not discarded:
            return
        self.on_retry()
        replay = list(received)

        async def replaying_receive() -> ReceiveMessage:
            return replay.pop(0) if replay else await receive()

        token = READ_ATTEMPT.set(ReadAttempt(on_primary=True))
        try:
            await next_app(scope, replaying_receive, send)
        finally:
            READ_ATTEMPT.reset(token)
