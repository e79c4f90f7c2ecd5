"""`observatory-api export` against `serve --demo` under granian: the file holds what the list
endpoint lists, a connection dropped mid-export is resumed, and a bad filter is one line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from observatory_api.exports.cli import CHUNK, record_ends
from tests.conftest import TEST_AUTH
from tests.e2e.server import UNSET, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def demo_server(folder: Path, traces: int) -> Iterator[tuple[RunningServer, str]]:
    """`serve --demo` with `traces` demo traces under granian, and its developer key."""
    with start_server(folder, workers=1, demo_traces=traces) as running:
        match = re.search(r"demo API key \(developer\): (obs_\S+)", running.log.read_text())
        assert match, running.log.read_text()
        yield running, match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    with demo_server(tmp_path_factory.mktemp("serve_export"), 300) as served:
        yield served


def window() -> list[str]:
    now = datetime.now(UTC)
    return ["--from", (now - timedelta(days=30, hours=1)).isoformat(), "--to", now.isoformat()]


def run_export(url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "observatory_api", "export", *args, "--url", url]
    env = {**os.environ, "OBSERVATORY_API_KEY": key}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def listed(server: RunningServer, key: str, params: dict[str, str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    query = {**params, "limit": "1000"}
    for _ in range(100):
        page = httpx.get(f"{server.base}/api/v1/spans", params=query, headers={"X-API-Key": key}, timeout=30).json()
        rows.extend(page["data"])
        if not page["has_more"]:
            return rows
        query["cursor"] = page["next_cursor"]
    raise AssertionError("pagination did not end")


def test_the_file_holds_every_span_the_list_holds(server: tuple[RunningServer, str], tmp_path: Path) -> None:
    running, key = server
    out = tmp_path / "llm.ndjson"
    args = window()
    done = run_export(running.base, key, "spans", *args, "--filter", "kind=llm", "--output", str(out))
    assert done.returncode == 0, done.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    expected = listed(running, key, {"from": args[1], "to": args[3], "kind": "llm", "sort": "start_time"})
    assert len(expected) > 100
    assert exported == expected
    assert f"exported {len(expected):,} spans" in done.stderr


def test_a_bad_filter_is_one_line_naming_it(server: tuple[RunningServer, str]) -> None:
    running, key = server
    done = run_export(running.base, key, "spans", "--filter", "kind=robot")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "400" in done.stderr and "kind" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


class CuttingProxy:
    """Forwards connections to `upstream`; the first answer is cut after `cut` bytes."""

    def __init__(self, upstream: int, cut: int) -> None:
        self.port = free_port()
        self.connections = 0
        self._upstream, self._cut = upstream, cut
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            limit = self._cut if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, limit), daemon=True).start()

    def _pipe(self, client: socket.socket, limit: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._upstream))
        threading.Thread(target=self._copy, args=(client, upstream, None), daemon=True).start()
        self._copy(upstream, client, limit)

    @staticmethod
    def _copy(source: socket.socket, target: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    target.sendall(data[: limit - sent])
                    break
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()


def assert_resumed_equal(
    running: RunningServer, key: str, cut: int, whole: Path, *args: str, resource: str = "spans"
) -> str:
    """The same export through a proxy that drops the connection after `cut` bytes: the CLI resumes
    once and writes the same file as the uncut export `whole`. Returns what the CLI said."""
    proxy = CuttingProxy(int(running.base.rsplit(":", 1)[1]), cut=cut)
    try:
        resumed = whole.with_name(f"resumed-{whole.name}")
        done = run_export(f"http://127.0.0.1:{proxy.port}", key, resource, *args, "--output", str(resumed))
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert proxy.connections == 2
    assert resumed.read_bytes() == whole.read_bytes()
    return done.stderr


def resumed_export(
    server: tuple[RunningServer, str], whole: Path, cut: Callable[[bytes], int], *args: str
) -> tuple[bytes, str, str]:
    """The window's spans exported (`args`: the format) uncut into `whole`, then cut after
    `cut(the uncut file)` bytes and resumed (`assert_resumed_equal`). Returns the uncut file and
    what the CLI said for the uncut and for the resumed export."""
    running, key = server
    span_window = window()
    done = run_export(running.base, key, "spans", *span_window, *args, "--output", str(whole))
    assert done.returncode == 0, done.stderr
    data = whole.read_bytes()
    return data, done.stderr, assert_resumed_equal(running, key, cut(data), whole, *span_window, *args)


def test_a_dropped_connection_is_resumed_after_the_last_complete_line(
    server: tuple[RunningServer, str], tmp_path: Path
) -> None:
    def cut(data: bytes) -> int:
        assert len(data) > 300_000
        return len(data) // 3

    resumed_export(server, tmp_path / "whole.ndjson", cut)


def test_parquet_and_otlp_json_files_from_a_server(server: tuple[RunningServer, str], tmp_path: Path) -> None:
    running, key = server
    args = window()
    expected = listed(running, key, {"from": args[1], "to": args[3], "sort": "start_time"})
    table_file = tmp_path / "spans.parquet"
    done = run_export(running.base, key, "spans", *args, "--format", "parquet", "--output", str(table_file))
    assert done.returncode == 0, done.stderr
    assert "bytes of Parquet" in done.stderr
    table = pq.read_table(table_file)
    assert table.column("span_id").to_pylist() == [row["span_id"] for row in expected]

    otlp_file = tmp_path / "spans.otlp.ndjson"
    done = run_export(running.base, key, "spans", *args, "--format", "otlp-json", "--output", str(otlp_file))
    assert done.returncode == 0, done.stderr
    requests = [json.loads(line) for line in otlp_file.read_text().splitlines()]
    assert f"exported {len(requests):,} OTLP/JSON requests" in done.stderr
    spans = [s for r in requests for rs in r["resourceSpans"] for sc in rs["scopeSpans"] for s in sc["spans"]]
    assert sorted(s["spanId"] for s in spans) == sorted(row["span_id"] for row in expected)


def test_a_dropped_otlp_json_export_is_resumed_after_its_last_complete_request(
    server: tuple[RunningServer, str], tmp_path: Path
) -> None:

    def cut(data: bytes) -> int:
        lines = data.splitlines(keepends=True)
        assert len(lines) >= 2  # a request per 1,000 spans
        # Cut inside the second request, past the first by one read of the CLI (http.client drops a
        # read the cut interrupts) and 4 KiB for the answer's headers and chunk sizes: the first is
        # complete, the rest is asked again. (Half the second request, as before, was less than one
        # read once the demo's second request shrank to 83 KB.)
        assert len(lines[1]) > CHUNK + 8192, [len(line) for line in lines]
        return len(lines[0]) + CHUNK + 4096

    resumed_export(server, tmp_path / "whole.otlp.ndjson", cut, "--format", "otlp-json")


def ingest_multiline_span(running: RunningServer) -> bytes:
    """A span whose input holds lines of 200,000 characters (the demo's texts are one line each),
    stored through OTLP/JSON ingest with a key made for it; returns the start of its input."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env |= {"JWT_SECRET": TEST_AUTH.jwt_secret or "", "SECRET_KEY": TEST_AUTH.secret_key or ""}
    command = [sys.executable, "-m", "observatory_api", "keys", "create", "--name", "csv", "--role", "ingest"]
    created = subprocess.run(command, cwd=running.log.parent, env=env, capture_output=True, text=True, timeout=60)
    key = re.search(r"obs_\S+", created.stdout + created.stderr)
    assert key, created.stderr
    now = datetime.now(UTC)
    text = "\n".join(f"line {n}: " + "x" * 200_000 for n in range(3))
    span = {
        "traceId": "c5" * 16,
        "spanId": "5c" * 8,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(int((now - timedelta(hours=1)).timestamp() * 1e9)),
        "endTimeUnixNano": str(int((now - timedelta(minutes=59)).timestamp() * 1e9)),
        "attributes": [{"key": "input.value", "value": {"stringValue": text}}],
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "csv-test"}}]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}
    answer = httpx.post(f"{running.base}/v1/traces", json=body, headers={"X-API-Key": key.group(0)}, timeout=30)
    assert answer.status_code == 200, answer.text
    return b"line 0: "


def test_a_dropped_csv_export_is_resumed_after_its_last_complete_record(
    server: tuple[RunningServer, str], tmp_path: Path
) -> None:
    marker = ingest_multiline_span(server[0])

    def cut(data: bytes) -> int:
        # A newline inside the quoted input, 200,000 bytes before the next one. The CLI gets what it
        # reads 64 KiB at a time (http.client drops a cut read), so a cut 100,000 bytes after that
        # newline leaves it the last newline received, in the middle of a record.
        inner = data.index(b"\n", data.index(marker))
        assert inner + 1 not in record_ends(data, "csv")
        assert data.index(b"\n", inner + 1) - inner > 200_000
        return inner + 100_000

    data, said, said_resumed = resumed_export(server, tmp_path / "whole.csv", cut, "--format", "csv")
    records = f"exported {len(record_ends(data, 'csv')):,} CSV records (the header included)"
    assert records in said
    assert records in said_resumed
