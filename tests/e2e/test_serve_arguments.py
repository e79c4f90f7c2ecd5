"""End to end: what `serve` is given on its command line reaches every granian worker.

Workers load their settings again after the fork (`create_app_from_environment`); before the
launcher handed them on, `--config` and `--workers` stopped at the launcher: two workers each
served the default file's features and believed themselves alone, each keeping a metric cache
that ingest through the other never dropped (stale answers).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import AUTH, start_server

pytestmark = pytest.mark.e2e
BOTH_STARTED_SECONDS = 60


def started_lines(log: Path) -> list[dict[str, Any]]:
    """The workers' `started` log lines (JSON logs)."""
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("message") == "started"]


def test_config_and_workers_from_the_command_line_reach_every_worker(tmp_path: Path) -> None:
    # Outside the working folder, so the ./api-config.yml fallback cannot supply it.
    config = tmp_path / "elsewhere" / "custom.yml"
    config.parent.mkdir()
    config.write_text("features:\n  docs: false\n  ingest: true\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with start_server(workdir, workers=2, args=["--config", str(config)], env={"LOG_FORMAT": "json"}) as server:
        # Ready means one worker answers; the other may still be starting (CI saw it stopped first).
        deadline = time.monotonic() + BOTH_STARTED_SECONDS
        while len(started_lines(server.log)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        docs = [httpx.get(f"{server.base}/schema/openapi.json", timeout=10).status_code for _ in range(8)]
        ingest = httpx.post(f"{server.base}/v1/traces", json={"resourceSpans": []}, headers=AUTH, timeout=10)
    started = started_lines(server.log)
    assert docs == [404] * 8  # no worker serves the docs the file turns off
    assert ingest.status_code != 404  # and each mounts the ingest it turns on
    assert len(started) == 2
    # Two workers without Redis: neither keeps a metric cache the other's writes could not drop.
    assert [line["metric_segment_cache"] for line in started] == [False, False]
