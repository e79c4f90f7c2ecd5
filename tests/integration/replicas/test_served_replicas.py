"""`serve` with two workers and a replica: the gauges on the metrics port (summed over the workers'
files: up is the lowest, lag the highest), /ready, and logs that name the replica by host:port only."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _pg_url
from tests.e2e.server import AUTH, RunningServer, start_server
from tests.replica import StreamingReplica

PASSWORD = "replica-password-never-logged"


def _replica_gauges(server: RunningServer, replica: StreamingReplica) -> dict[str, float]:
    response = httpx.get(server.metrics, timeout=10)
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("db_replica_") and sample.labels.get("replica") == replica.name
    }


def _wait_for_up(server: RunningServer, replica: StreamingReplica, up: float, seconds: float = 20) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    while True:
        gauges = _replica_gauges(server, replica)
        if gauges.get("db_replica_up") == up:
            return gauges
        if time.monotonic() > deadline:
            pytest.fail(f"db_replica_up never became {up}: {gauges}")
        time.sleep(0.2)


def test_served_workers_report_the_replica_and_fall_back_when_it_dies(
    tmp_path: Path, replicated_database: str, standby: StreamingReplica
) -> None:
    replica_url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{standby.port}/{replicated_database}"
    env = {"DATABASE_URL": _pg_url(replicated_database), "DB_REPLICA_URLS": replica_url}
    with start_server(tmp_path, workers=2, env=env) as server:
        gauges = _wait_for_up(server, standby, 1)
        assert 0 <= gauges["db_replica_lag_seconds"] <= 10
        ready = httpx.get(f"{server.base}/ready", timeout=10).json()
        assert [(state["replica"], state["status"]) for state in ready["replicas"]] == [(standby.name, "ok")]
        listed = httpx.get(
            f"{server.base}/api/v1/traces",
            params={"from": "2026-11-18T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
            headers=AUTH,
            timeout=10,
        )
        trace_id = listed.json()["data"][0]["trace_id"]

        standby.stop()
        statuses = [
            httpx.get(f"{server.base}/api/v1/traces/{trace_id}", headers=AUTH, timeout=10).status_code
            for _ in range(20)
        ]
        assert set(statuses) == {200}
        _wait_for_up(server, standby, 0)
        ready = httpx.get(f"{server.base}/ready", timeout=10)
        assert ready.status_code == 200  # the primary answers: still ready
        assert ready.json()["replicas"][0]["status"] == "down"

        standby.start()
        _wait_for_up(server, standby, 1)
    log = server.log.read_text()
    assert PASSWORD not in log
    assert f"replica {standby.name} taken out of the read rotation" in log
