"""A client that goes away in the middle of an export, against granian on PostgreSQL: no
transaction is left open (nothing idle in transaction, nothing still running), and the server
goes on answering."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import RUN_ID, _create_database, _drop_database, _pg_url
from tests.e2e.server import RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str, str]]:
    """`serve --demo` on a new PostgreSQL database: the server, its developer key, the database URL."""
    name = f"observatory_test_{RUN_ID}_disconnect"
    asyncio.run(_create_database(name))
    url = _pg_url(name)
    try:
        workdir = tmp_path_factory.mktemp("export_disconnect")
        with start_server(workdir, workers=1, demo_traces=2500, env={"DATABASE_URL": url}) as running:
            match = re.search(r"demo API key \(developer\): (obs_\S+)", running.log.read_text())
            assert match, running.log.read_text()
            yield running, match.group(1), url
    finally:
        asyncio.run(_drop_database(name))


async def _sessions(url: str) -> list[tuple[str | None, str | None]]:
    """(state, query) of every other session on the database."""
    watcher = await asyncpg.connect(url)
    try:
        rows = await watcher.fetch(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await watcher.close()
    return [(row["state"], row["query"]) for row in rows]


def busy(url: str) -> list[tuple[str | None, str | None]]:
    return [s for s in asyncio.run(_sessions(url)) if s[0] not in ("idle", None)]


def exports_logged(server: RunningServer) -> int:
    return server.log.read_text().count("GET /api/v1/spans/export 200")


def start_export(server: RunningServer, key: str) -> socket.socket:
    """A raw HTTP/1.1 export request whose answer is left unread (the server blocks on sending)."""
    now = datetime.now(UTC)
    query = urllib.parse.urlencode({"from": (now - timedelta(days=31)).isoformat(), "to": now.isoformat()})
    host, port = server.base.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    client.connect((host, int(port)))
    request = (
        f"GET /api/v1/spans/export?{query} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
        "Accept-Encoding: identity\r\n\r\n"
    )
    client.sendall(request.encode())
    return client


def test_a_client_going_away_mid_export_leaves_no_open_transaction(pg_server: tuple[RunningServer, str, str]) -> None:
    server, key, url = pg_server
    finished = exports_logged(server)
    client = start_export(server, key)
    first = client.recv(4096)
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    time.sleep(1.0)  # the server fills the socket's buffers and waits, mid-export
    assert exports_logged(server) == finished  # the access line comes when an export ends: not yet
    # While it waits between pages, no transaction is held for the export.
    assert busy(url) == []
    # Gone without a goodbye: RST, not FIN (SO_LINGER 0).
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()

    deadline = time.monotonic() + 10
    while (left := busy(url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left
    # Nothing idle in transaction at all, and the server still answers exports.
    assert not [s for s in asyncio.run(_sessions(url)) if s[0] and "transaction" in s[0]]
    again = httpx.get(
        f"{server.base}/api/v1/logs/export",
        params={"from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
        headers={"X-API-Key": key},
        timeout=30,
    )
    assert again.status_code == 200, again.text


def test_the_log_names_no_unhandled_error_for_the_cut_export(pg_server: tuple[RunningServer, str, str]) -> None:
    server, key, url = pg_server
    for _ in range(3):
        client = start_export(server, key)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    time.sleep(1.0)
    assert busy(url) == []
    assert "Traceback" not in Path(server.log).read_text()
