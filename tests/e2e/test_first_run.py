"""A newcomer's first run, as a user runs it: `observatory-api serve` in a subprocess.

Busy ports are one line (and, for metrics in development, a fallback), `/` says where to go, and
every metric with a fixed set of label values shows at 0 from the first scrape.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY
from tests.e2e.server import UNSET, RunningServer, free_port, start_server

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    """A port on 127.0.0.1 that another process (here: this one) listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def serve(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in UNSET}
    return subprocess.run(
        [sys.executable, "-m", "observatory_api", "serve", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_busy_api_port_is_one_line_before_any_seeding(tmp_path: Path) -> None:
    with port_in_use() as port:
        result = serve("--demo", "--port", str(port), cwd=tmp_path, env={"API_METRICS_PORT": str(free_port())})

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"observatory-api: cannot serve the API on 127.0.0.1:{port}: the port is in use by another process "
        f"(choose another with --port or API_PORT; `ss -ltnp 'sport = :{port}'` shows which)"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "observatory.db").exists()  # nothing was migrated or seeded


def test_a_busy_metrics_port_stops_staging_in_one_line(tmp_path: Path) -> None:
    env = {"ENVIRONMENT": "staging", "JWT_SECRET": STRONG_JWT_SECRET, "SECRET_KEY": STRONG_SECRET_KEY}
    with port_in_use() as metrics_port:
        result = serve("--port", str(free_port()), cwd=tmp_path, env={**env, "API_METRICS_PORT": str(metrics_port)})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"observatory-api: cannot serve metrics on 127.0.0.1:{metrics_port}: the port is in use by another process "
        f"(choose another with API_METRICS_PORT; `ss -ltnp 'sport = :{metrics_port}'` shows which)"
    ]


@pytest.fixture(scope="module")
def fallen_back(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    """A development `serve --demo` whose metrics port was taken: it serves metrics on a free port."""
    with port_in_use() as busy:
        workdir = tmp_path_factory.mktemp("first-run")
        with start_server(workdir, workers=1, demo_traces=30, env={"API_METRICS_PORT": str(busy)}) as server:
            log = server.log.read_text()
            match = re.search(rf"metrics port {busy} is in use; metrics on the free port (\d+) instead", log)
            assert match, log
            yield server, f"http://127.0.0.1:{match.group(1)}/metrics"


def test_a_busy_metrics_port_in_development_falls_back_to_a_free_one(fallen_back: tuple[RunningServer, str]) -> None:
    server, metrics_url = fallen_back
    assert f"metrics on {metrics_url}" in server.log.read_text()
    assert httpx.get(metrics_url, timeout=10).status_code == 200


def test_documented_metrics_show_at_zero_from_the_start(fallen_back: tuple[RunningServer, str]) -> None:
    _, metrics_url = fallen_back
    exposition = httpx.get(metrics_url, timeout=10).text
    for series in (
        'api_graphql_queries_total{operation="query",status="ok"} 0.0',
        'api_graphql_queries_total{operation="query",status="error"} 0.0',
        'rate_limit_exceeded_total{scope="role"} 0.0',
        'rate_limit_exceeded_total{scope="anonymous"} 0.0',
        'rate_limit_requests_allowed_total{scope="role"} 0.0',
        'api_auth_failures_total{reason="key_unknown"} 0.0',
        'ingest_records_rejected_total{reason="span_id_conflict",signal="spans"} 0.0',
        'ingest_requests_refused_total{reason="too_large",signal="logs"} 0.0',
    ):
        assert series in exposition, series


def test_the_root_says_where_to_go(fallen_back: tuple[RunningServer, str]) -> None:
    server, _ = fallen_back
    answer = httpx.get(f"{server.base}/", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["docs"]["swagger"] == "/schema/swagger"
    assert body["graphql"] == {"endpoint": "/graphql"}
    assert body["health"]["ready"] == "/ready"
    assert "README.md" in body["readme"]["quickstart"]
    for link in (*body["docs"].values(), body["health"]["alive"], body["health"]["ready"]):
        if link != "/api/v1":
            assert httpx.get(f"{server.base}{link}", timeout=10).status_code == 200, link


def test_serve_demo_says_what_it_does_in_order_with_a_progress_bar(fallen_back: tuple[RunningServer, str]) -> None:
    server, _ = fallen_back
    log = server.log.read_text()
    steps = [
        "observatory-api: starting (development, SQLite ",
        "observatory-api: migrating the database to the latest schema",
        "observatory-api: first start: writing 30 demo traces over the last 30 days",
        "seeding demo traces",  # rich's progress bar
        "observatory-api: seeded 30 traces",
        "observatory-api: demo API key (developer): obs_",
        "observatory-api: serving on http://127.0.0.1:",
    ]
    positions = [log.find(step) for step in steps]
    assert all(position >= 0 for position in positions), list(zip(steps, positions, strict=True))
    assert positions == sorted(positions), log
    assert log.startswith(steps[0])  # the first thing printed, before the slow imports
