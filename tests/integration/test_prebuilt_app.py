"""A forked worker serves the app `serve` built before the fork instead of building it again
(~19 MB a worker; docs/performance.md, "Memory"), unless its settings differ from the launcher's.

Run as `serve` runs it, in a fresh interpreter: `preload_worker_imports` as the launcher calls it,
then `os.fork()` and, in the child, the factory granian calls (`create_app_from_environment`), its
lifespan and a request, with the builds of `create_app` counted after the preload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from observatory_api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

LAUNCHER = r"""
import json, os, sys
from pathlib import Path

from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, multiprocess

import observatory_api.app as app_module
from observatory_api import __version__
from observatory_api.settings import load_settings
from observatory_api.startup import preload_worker_imports

metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
preload_worker_imports(load_settings(), metrics_dir)
builds = []
build = app_module.create_app


def counted(settings):
    builds.append(os.getpid())
    return build(settings)


app_module.create_app = counted
read, write = os.pipe()
if os.fork() == 0:  # the worker
    os.environ.update(json.loads(sys.argv[1]))
    app = app_module.create_app_from_environment()
    with TestClient(app) as client:
        status = client.get("/ready").status_code
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(metrics_dir))
    os.write(write, json.dumps({
        "builds": len(builds),
        "ready": status,
        "build_info": registry.get_sample_value("observatory_api_build_info", {"version": __version__}),
        "metric_files": any(metrics_dir.glob(f"*_{os.getpid()}.db")),
    }).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read) as answer:
    print(answer.read())
os.wait()
"""


def run_worker(workdir: Path, worker_env: dict[str, str] | None = None) -> dict[str, Any]:
    (workdir / "prometheus").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "OBSERVATORY_CONFIG")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
        ENVIRONMENT="development",
        INGEST_ENABLED="true",
        INGEST_GRPC_PORT="0",
    )
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, json.dumps(worker_env or {})],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=workdir,  # its SQLite file, ./observatory.db
        env=env,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def test_a_forked_worker_serves_the_launchers_app_without_building_one(tmp_path: Path) -> None:
    worker = run_worker(tmp_path)
    assert worker["builds"] == 0
    assert worker["ready"] == 200
    # What the build recorded for the launcher's process, recorded again for the worker's.
    assert worker["metric_files"]
    assert worker["build_info"] == 1


def test_a_worker_whose_settings_differ_builds_its_own(tmp_path: Path) -> None:
    worker = run_worker(tmp_path, {"API_WORKERS": "3"})
    assert worker["builds"] == 1
    assert worker["ready"] == 200


def test_the_process_that_built_the_app_never_takes_it() -> None:
    from litestar import Litestar

    from observatory_api import prebuilt

    # Imported here: on a tree without it, the fork tests above still run (and fail: two builds).
    settings = Settings(environment="test")
    prebuilt.keep_for_workers(settings, Litestar())
    try:
        assert prebuilt.take_for_worker(settings) is None
    finally:
        prebuilt._prebuilt = None
