"""`observatory-api export` of the formats the CLI encodes itself from the NDJSON export
(exports/local.py), against `serve --demo` under granian: a Parquet file and an OTLP/JSON log
export are byte for byte the service's own, and a connection dropped mid-export is resumed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from observatory_api.exports.cli import CHUNK
from tests.e2e.server import RunningServer
from tests.e2e.test_export_cli import assert_resumed_equal, demo_server, run_export, window

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    # Enough rows that the zstd-compressed NDJSON is several of the CLI's 64 KiB reads long.
    with demo_server(tmp_path_factory.mktemp("serve_export_encoded"), 1500) as served:
        yield served


def served(running: RunningServer, key: str, resource: str, fmt: str, encoding: str, args: list[str]) -> bytes:
    """The service's export as sent (not decoded)."""
    params = {"from": args[1], "to": args[3], "format": fmt}
    headers = {"X-API-Key": key, "Accept-Encoding": encoding}
    url = f"{running.base}/api/v1/{resource}/export"
    with httpx.stream("GET", url, params=params, headers=headers, timeout=60) as answer:
        assert answer.status_code == 200
        return b"".join(answer.iter_raw())


def a_cut_inside(running: RunningServer, key: str, resource: str, args: list[str]) -> int:
    """A cut past the CLI's first 64 KiB read of the zstd NDJSON it asks for (http.client drops a
    read the cut interrupts), well before the answer's end."""
    wire = len(served(running, key, resource, "ndjson", "zstd", args))
    cut = CHUNK + 8192
    assert wire > cut + 32_768, wire
    return cut


def summary(resource: str, fmt: str, file: bytes) -> str:
    """What the CLI says of the file: its Parquet bytes (a row group per 10,000 spans), its OTLP/JSON
    requests (one per 1,000 logs)."""
    if fmt == "parquet":
        assert pq.read_table(pa.BufferReader(file)).num_rows > 5_000
        return f"exported {len(file):,} bytes of Parquet"
    requests = file.splitlines()
    assert len(requests) >= 3
    return f"exported {len(requests):,} OTLP/JSON requests"


@pytest.mark.parametrize(("resource", "fmt"), [("spans", "parquet"), ("logs", "otlp-json")])
def test_the_file_is_the_services_own_and_a_dropped_connection_is_resumed(
    server: tuple[RunningServer, str], tmp_path: Path, resource: str, fmt: str
) -> None:
    running, key = server
    args = window()
    whole = tmp_path / f"{resource}.{fmt}"
    done = run_export(running.base, key, resource, *args, "--format", fmt, "--output", str(whole))
    assert done.returncode == 0, done.stderr
    assert whole.read_bytes() == served(running, key, resource, fmt, "identity", args)
    assert summary(resource, fmt, whole.read_bytes()) in done.stderr

    cut = a_cut_inside(running, key, resource, args)
    assert_resumed_equal(running, key, cut, whole, *args, "--format", fmt, resource=resource)


def test_a_parquet_export_of_traces_is_the_services_own(server: tuple[RunningServer, str], tmp_path: Path) -> None:
    running, key = server
    args = window()
    out = tmp_path / "traces.parquet"
    done = run_export(running.base, key, "traces", *args, "--format", "parquet", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == served(running, key, "traces", "parquet", "identity", args)
    assert pq.read_table(out).num_rows == 1500
