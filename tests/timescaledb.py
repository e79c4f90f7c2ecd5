"""The tests' TimescaleDB pass: which server, and what a test template needs there.

`OBSERVATORY_TEST_TIMESCALEDB_URL` (set by `.ci/run`'s second pass, e.g.
postgresql://postgres@127.0.0.1:5433/postgres from ../shared/timescaledb/start.sh) makes the
PostgreSQL-backed tests run on that server. Imports nothing of the app.
"""

from __future__ import annotations

import asyncio
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

    Each refresh policy is then run once here, as a server's scheduler does right after
    migrating: an aggregate never refreshed has every range waiting for its refresh (its initial
    invalidation spans all time), so the metric segment cache keeps nothing of it. The scheduler's
    own first runs are not to be relied on: on a busy server it runs out of background workers
    (16, shared by every test database's scheduler) and skips them; a CI run once had the minute
    aggregates refreshed and the hour and day ones not.
    """
    conn = await asyncpg.connect(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    admin = await asyncpg.connect(admin_url)
    try:
        await conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs")
        # No new connection from here; the scheduler and any job it started are ended (a refresh
        # cut short is finished by the run below), leaving this one connection.
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
            name,
            conn.get_server_pid(),
        )
        refreshes = await conn.fetch(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY job_id"
        )
        for job in refreshes:
            await _run_job(conn, int(job["job_id"]))
    finally:
        await conn.close()
        await admin.close()


async def _run_job(conn: asyncpg.Connection, job_id: int) -> None:
    """`CALL run_job(job_id)`, again while a refresh of an ended job still holds its aggregate
    (a terminated backend lets go a moment later)."""
    for _ in range(49):
        try:
            await conn.execute(f"CALL run_job({job_id})")
            return
        except asyncpg.exceptions.LockNotAvailableError:
            await asyncio.sleep(0.1)
    await conn.execute(f"CALL run_job({job_id})")  # the 50th: its error is the pass's


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
