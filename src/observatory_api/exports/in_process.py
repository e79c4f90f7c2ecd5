"""`observatory-api export --direct`: an export straight from the database, no server running.

The app is driven in this process through ASGI, as a server would: lifespan startup, one GET on
the export route, each body chunk written to the output as the app yields it, lifespan shutdown.
So filters, formats, limits and the rows are the service's own. The request carries an admin
access token minted here with the TokenService (the settings' signing key): whoever can read the
configuration and the database can read everything anyway. Ingest is off.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec

from observatory_api.security.tokens import TokenService
from observatory_api.settings import Settings

SUBJECT = "cli-export-direct"


class Sink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class DirectExportFailed(Exception):
    """The export request was answered with an error; the message is its problem's detail."""


async def export_direct(
    make_app: Callable[[Settings], Any], settings: Settings, path: str, params: Mapping[str, str], out: Sink
) -> int:
    """Run the export at `path` (e.g. /api/v1/spans/export) with query `params` into `out`, on the
    app `make_app` builds (the wiring's create_app: passed in, a feature never imports it); the
    number of bytes written. Raises DirectExportFailed with the problem detail of a failed request."""
    settings = settings.replace(
        features=msgspec.structs.replace(settings.features, ingest=False),
        # One export: a Parquet one loads pyarrow itself, the others never need it.
        query=msgspec.structs.replace(settings.query, preload_parquet=False),
        # A command's standard error says what went wrong, not that the app started and stopped.
        logging=msgspec.structs.replace(settings.logging, level="WARNING"),
    )
    app = make_app(settings)
    token = TokenService.from_settings(settings).issue(subject=SUBJECT, role="admin", kind="access").token
    lifespan = _Lifespan(app)
    await lifespan.startup()
    try:
        return await _get(app, path, params, token, out)
    finally:
        await lifespan.shutdown()


class _Lifespan:
    """The ASGI lifespan protocol, as a server speaks it."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        await self._from_app.put(message)

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.create_task(self._app(scope, self._to_app.get, self._send))
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        if self._task is not None:
            await self._task

    async def _step(self, phase: str) -> None:
        await self._to_app.put({"type": f"lifespan.{phase}"})
        answer = await self._from_app.get()
        if answer["type"] != f"lifespan.{phase}.complete":
            raise DirectExportFailed(f"the app's {phase} failed: {answer.get('message') or answer['type']}")


async def _get(app: Any, path: str, params: Mapping[str, str], token: str, out: Sink) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urllib.parse.urlencode(dict(params)).encode(),
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"accept-encoding", b"identity"),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("localhost", 80),
        "state": {},
    }
    done = asyncio.Event()
    requested = False
    status = 0
    error = bytearray()
    written = 0

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # a client that stays until the answer ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, written
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if status >= 400:
                error.extend(body)
            elif body:
                out.write(body)
                written += len(body)
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    if status >= 400 or status == 0:
        raise DirectExportFailed(_problem(status, bytes(error)))
    return written


def _problem(status: int, body: bytes) -> str:
    try:
        problem = json.loads(body)
        detail = problem.get("detail") or problem.get("title")
        fields = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in problem.get("errors") or [])
    except (ValueError, AttributeError):
        return f"{status} {body[:200].decode(errors='replace')}"
    return f"{status} {detail}" + (f" ({fields})" if fields and fields not in str(detail) else "")
