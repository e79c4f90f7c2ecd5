"""Start `observatory-api serve` under granian on a free port, for the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from observatory_api.settings import DatabaseSettings
from tests.conftest import TEST_AUTH, auth_headers, make_settings

# The server's own configuration comes from its working folder and `env`, never from the caller's shell.
UNSET = ("DATABASE_URL", "REDIS_URL", "ENVIRONMENT", "PROMETHEUS_MULTIPROC_DIR", "OBSERVATORY_CONFIG")
READY_SECONDS = 90
STOP_SECONDS = 15
# Unless `env` says otherwise the server signs and checks tokens with the test secrets, as AUTH is signed.
AUTH = auth_headers(make_settings(DatabaseSettings()), "developer")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    process: subprocess.Popen[bytes]
    base: str
    metrics_port: int
    log: Path
    grpc_port: int = 0  # OTLP/gRPC, when the server's ingest is on

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@contextlib.contextmanager
def start_server(
    workdir: Path,
    *,
    workers: int,
    demo_traces: int | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    args: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """`[args] serve [--demo --demo-traces N] --workers W` in `workdir` (its database, config and `server.log`),
    with the API (on `port` when given: a restart keeps its address) and the metrics each on a free
    port; ready when entered, stopped with SIGTERM when left."""
    port, metrics_port, grpc_port = port or free_port(), free_port(), free_port()
    server_env = {k: v for k, v in os.environ.items() if k not in UNSET}
    server_env.update(
        API_METRICS_PORT=str(metrics_port),
        JWT_SECRET=TEST_AUTH.jwt_secret or "",
        SECRET_KEY=TEST_AUTH.secret_key or "",
        # Never the well-known 4317: the machine is shared (a server without ingest ignores it).
        INGEST_GRPC_PORT=str(grpc_port),
    )
    server_env.update(env or {})
    command = [sys.executable, "-m", "observatory_api", *args, "serve", "--port", str(port), "--workers", str(workers)]
    if demo_traces is not None:
        command += ["--demo", "--demo-traces", str(demo_traces)]
    log_path = workdir / "server.log"
    with log_path.open("a") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            grpc_port = int(server_env["INGEST_GRPC_PORT"])
            server = RunningServer(process, f"http://127.0.0.1:{port}", metrics_port, log_path, grpc_port)
            wait_ready(server.base, process, log_path)
            yield server
        finally:
            stop(process)


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server was not ready within {READY_SECONDS} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group (granian and its workers), SIGKILL if it outlasts the wait."""
    # The group may be gone already, when the server exited before it was ready.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)
