"""End to end: `serve --workers 2` loads the app in the launcher before granian forks the workers,
so the workers share its pages copy-on-write (docs/performance.md, "Memory")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import RunningServer, start_server

pytestmark = pytest.mark.e2e
# The app's modules are ~100 MB of a worker's Python heap; loaded once in the launcher, a worker
# still shares most of them with it (~70-80 MB measured). Loaded in each worker, it shares none.
SHARED_AT_LEAST_MB = 30


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    workdir = tmp_path_factory.mktemp("sharing")
    metrics_dir = workdir / "prometheus"
    with start_server(workdir, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as server:
        yield server, metrics_dir


def workers_of(launcher: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def shared_dirty_mb(pid: int) -> float:
    """Pages written before the fork and still shared with another process (smaps_rollup)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Shared_Dirty:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no Shared_Dirty for {pid}")


def test_the_workers_share_the_app_the_launcher_loaded(served: tuple[RunningServer, Path]) -> None:
    server, _ = served
    workers = workers_of(server.process.pid)
    assert len(workers) == 2
    shared = {pid: shared_dirty_mb(pid) for pid in workers}
    assert all(mb >= SHARED_AT_LEAST_MB for mb in shared.values()), shared


def test_the_launcher_keeps_no_metric_values_of_its_own(served: tuple[RunningServer, Path]) -> None:
    # Loading the app imports the metric definitions, which open value files for the process: the
    # launcher's zeros would sit in every `livemin` gauge beside the workers' values.
    server, metrics_dir = served
    files = [path.name for path in metrics_dir.glob("*.db")]
    assert files, "the workers wrote no metric files"
    assert not [name for name in files if name.endswith(f"_{server.process.pid}.db")], files


def test_no_worker_fails_to_start_on_a_new_database(served: tuple[RunningServer, Path]) -> None:
    # The launcher brings a new SQLite file to head before the fork: the two workers, upgrading
    # it at once, collided ("table ... already exists") and granian respawned the one that failed.
    server, _ = served
    log = server.log.read_text()
    assert "lifespan startup failed" not in log
    assert "Respawning" not in log
