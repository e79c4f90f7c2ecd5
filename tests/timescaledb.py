"""The tests' TimescaleDB pass: which server, and what a test template needs there.

`OBSERVATORY_TEST_TIMESCALEDB_URL` (set by `.ci/run`'s second pass, e.g.
postgresql://postgres@127.0.0.1:5433/postgres from ../shared/timescaledb/start.sh) makes the
PostgreSQL-backed tests run on that server. Imports nothing of the app.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

# The TimescaleDB and PostgreSQL versions the TimescaleDB pass runs on (checked there, by
# tests/integration/timescaledb/test_versions.py) and compose.yml deploys.
TESTED_TIMESCALEDB = "2.28.3"
TESTED_POSTGRESQL_MAJOR = 15
TIMESCALEDB_URL = os.environ.get("OBSERVATORY_TEST_TIMESCALEDB_URL") or None
ON_TIMESCALEDB = TIMESCALEDB_URL is not None
# Tests that need TimescaleDB itself; they run in the TimescaleDB pass only.
ONLY_ON_TIMESCALEDB = Path(__file__).resolve().parent / "integration" / "timescaledb"
# Tests that emulate TimescaleDB on plain PostgreSQL (a SQL `time_bucket`, plain views): on
# TimescaleDB they give way to tests/integration/timescaledb, which test the real thing.
EMULATING_TIMESCALEDB = {Path(__file__).resolve().parent / "integration" / "metrics" / "test_continuous_aggregates.py"}


async def prepare_template(admin_url: str, name: str) -> None:
    """Make the migrated database `name` of the server of `admin_url` a template TimescaleDB lets the tests clone.

    TimescaleDB's job scheduler stays connected to every database with the extension, and
    `CREATE DATABASE ... TEMPLATE` refuses a source with other users: the template takes no
    connections (the launcher skips such databases) and its scheduler is ended. Its jobs are
    unscheduled, so the clones inherit no background refresh, compression or retention that
    would change a test's tables while it runs; tests run a job with `CALL run_job(id)`.
    """
    conn = await asyncpg.connect(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    try:
        await conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs")
    finally:
        await conn.close()
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()


def select_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On TimescaleDB, leave out the SQLite cases (the first pass ran them) and the emulations of
    TimescaleDB; elsewhere, leave out the tests that need TimescaleDB."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        path = Path(str(item.fspath))
        if ON_TIMESCALEDB:
            drop = "sqlite" in params.values() or path in EMULATING_TIMESCALEDB
        else:
            drop = ONLY_ON_TIMESCALEDB in path.parents
        (dropped if drop else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
