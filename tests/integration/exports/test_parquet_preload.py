"""`query.preload_parquet`: a worker with pyarrow installed loads it as it starts, so what pyarrow
sets up once is start-up memory, not the first Parquet export's growth; off, it waits for the first
Parquet export; `export --direct` never preloads (its one export loads it if it is Parquet); a
server without pyarrow starts as before."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from observatory_api.exports import parquet
from tests.conftest import STRONG_JWT_SECRET, STRONG_SECRET_KEY

# A fresh interpreter (this one imported pyarrow long ago): the real app and lifespan over a
# migrated SQLite file, then which pyarrow modules the worker holds.
STARTUP = """
import asyncio, sys
from observatory_api.app import create_app
from observatory_api.exports.in_process import _Lifespan
from observatory_api.settings import DatabaseSettings, QuerySettings
from tests.conftest import make_settings

async def main() -> None:
    query = QuerySettings(preload_parquet=sys.argv[2] == "on")
    settings = make_settings(DatabaseSettings(sqlite_path=sys.argv[1]), query=query)
    lifespan = _Lifespan(create_app(settings))
    await lifespan.startup()
    print("pyarrow.parquet" in sys.modules, "pyarrow._parquet" in sys.modules)
    await lifespan.shutdown()

asyncio.run(main())
"""


def started_worker(database: Path, preload: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", STARTUP, str(database), preload],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.usefixtures("_sqlite_template_ready")
def test_a_worker_loads_pyarrow_as_it_starts_unless_told_not_to(sqlite_template: Path, tmp_path: Path) -> None:
    database = tmp_path / "observatory.db"
    shutil.copyfile(sqlite_template, database)
    assert started_worker(database, "on") == "True True"  # the writer's C++ module too: a row was written
    assert started_worker(database, "off") == "False False"


@pytest.mark.usefixtures("_sqlite_template_ready")
def test_export_direct_of_ndjson_does_not_load_pyarrow(sqlite_template: Path, tmp_path: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "observatory.db")
    script = (
        "import runpy, sys\n"
        "sys.argv = ['observatory-api', 'export', 'spans', '--direct', '--output', 'out.ndjson']\n"
        "try:\n    runpy.run_module('observatory_api', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('pyarrow' in sys.modules)\n"
    )
    env = {"ENVIRONMENT": "test", "JWT_SECRET": STRONG_JWT_SECRET, "SECRET_KEY": STRONG_SECRET_KEY, "PATH": ""}
    env |= {"PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "out.ndjson").exists()


def test_without_pyarrow_preload_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a server installed without the [parquet] extra: importing pyarrow fails.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert parquet.preload() is False
