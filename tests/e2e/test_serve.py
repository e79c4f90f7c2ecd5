"""End to end: `observatory-api serve --demo` under granian on a free port, queried over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
DEMO_TRACES = "120"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ENVIRONMENT")}
    env["API_METRICS_PORT"] = str(free_port())
    command = [
        sys.executable,
        "-m",
        "observatory_api",
        "serve",
        "--demo",
        "--demo-traces",
        DEMO_TRACES,
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, workdir / "server.log")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server was not ready within 90 s:\n{log.read_text()}")


def test_serves_the_demo_data_over_http(server: str) -> None:
    now = datetime.now(UTC)
    params = {"from": (now - timedelta(days=30, hours=1)).isoformat(), "to": now.isoformat(), "limit": "1000"}
    seen: set[str] = set()
    # Several requests, so that both workers answer at least some of them.
    for _ in range(6):
        response = httpx.get(f"{server}/api/v1/traces", params=params, timeout=10)
        assert response.status_code == 200
        body = response.json()
        seen.update(item["trace_id"] for item in body["data"])
    assert len(seen) == int(DEMO_TRACES)
    detail = httpx.get(f"{server}/api/v1/traces/{sorted(seen)[0]}", timeout=10)
    assert detail.status_code == 200
    assert detail.json()["spans"]


def test_errors_and_docs_over_http(server: str) -> None:
    bad = httpx.get(f"{server}/api/v1/traces", params={"limit": "0"}, timeout=10)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{server}/schema/openapi.json", timeout=10).json()["openapi"].startswith("3.1")
    assert httpx.get(f"{server}/alive", timeout=10).json() == {"status": "alive"}
