"""The launcher's side of multi-process metrics: the folder, dead workers, the endpoint."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from observatory_api.observability.metrics_server import (
    MULTIPROC_ENV,
    WorkerProcessCollector,
    prepare_multiprocess_dir,
    reap_dead_workers,
    start_metrics_server,
)


def test_an_unset_folder_becomes_a_fresh_temporary_one_removed_at_exit() -> None:
    environ: dict[str, str] = {}
    directory = prepare_multiprocess_dir(environ)
    assert directory.owned
    assert environ[MULTIPROC_ENV] == str(directory.path)
    assert directory.path.is_dir()
    assert not any(directory.path.iterdir())
    directory.cleanup()
    assert not directory.path.exists()


def test_a_named_folder_is_created_or_emptied_of_old_values_only(tmp_path: Path) -> None:
    target = tmp_path / "prometheus"
    environ = {MULTIPROC_ENV: str(target)}
    assert prepare_multiprocess_dir(environ).path == target
    (target / "counter_123.db").write_bytes(b"old run")
    (target / "keep.txt").write_text("not ours")
    directory = prepare_multiprocess_dir(environ)
    assert not directory.owned
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    directory.cleanup()
    assert target.is_dir(), "a folder the operator named is not removed"


def test_dead_workers_lose_their_live_gauges_but_keep_their_counts(tmp_path: Path) -> None:
    for name in ("gauge_livesum_111.db", "gauge_livesum_222.db", "gauge_liveall_222.db", "counter_222.db"):
        (tmp_path / name).write_bytes(b"")
    assert reap_dead_workers(tmp_path, is_alive=lambda pid: pid == 111) == [222]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_222.db", "gauge_livesum_111.db"]


def test_the_endpoint_answers_metrics_only_at_metrics() -> None:
    registry = CollectorRegistry()
    Counter("probe_events", "Events.", registry=registry).inc(3)
    scrapes: list[int] = []
    server = start_metrics_server("127.0.0.1", 0, registry, before_scrape=lambda: scrapes.append(1))
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert response.status_code == 200
        assert "probe_events_total 3.0" in response.text
        assert scrapes == [1]
        assert httpx.get(f"http://127.0.0.1:{server.port}/", timeout=5).status_code == 404
    finally:
        server.close()


def test_a_taken_port_fails_before_anything_starts() -> None:
    server = start_metrics_server("127.0.0.1", 0, CollectorRegistry())
    try:
        with pytest.raises(OSError, match="in use"):
            start_metrics_server("127.0.0.1", server.port, CollectorRegistry())
    finally:
        server.close()


def test_process_metrics_cover_the_launcher() -> None:
    samples = {
        sample.name: sample.value
        for family in WorkerProcessCollector(root_pid=os.getpid()).collect()
        for sample in family.samples
    }
    assert samples["process_resident_memory_bytes"] > 0
    assert samples["process_cpu_seconds_total"] > 0
    assert "observatory_api_worker_processes" in samples
