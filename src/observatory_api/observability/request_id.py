"""`X-Request-ID`: accepted when well-formed, generated otherwise, returned on every response.

The id is made lazily on first use and kept in the scope, so that error handlers, logs and the
response header agree, including for responses no route handled (404, 405).
"""

from __future__ import annotations

import re
import uuid

from litestar.types import Message, Scope

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    value = state.get("request_id")
    if value is None:
        offered = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == _HEADER_BYTES), "")
        value = state["request_id"] = offered if _WELL_FORMED.match(offered) else uuid.uuid4().hex
    return value


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """App-level `before_send` hook: runs for every response, handled or not."""
    if message["type"] == "http.response.start":
        # One pass over the raw list (MutableScopeHeaders decodes every name to find one).
        headers = [(name, value) for name, value in message.get("headers") or () if name.lower() != _HEADER_BYTES]
        headers.append((_HEADER_BYTES, request_id(scope).encode("latin-1")))
        message["headers"] = headers
