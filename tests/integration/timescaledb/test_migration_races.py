"""A migration that drops the continuous aggregates while one of their refresh jobs commits.

A refresh rewrites its aggregate's invalidation log; dropping the aggregate deletes the same
rows, waits for the refresh's transaction and then, before `db.timescaledb_ddl`, failed with
`tuple concurrently deleted` (seen in CI: a migration right after a downgrade had re-added
scheduled policies, whose first runs start at once). The migration now runs the drop again.
"""

from __future__ import annotations

import asyncio

import asyncpg

from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings
from tests.conftest import ADMIN_URL, _pg_url, run_migration, scratch_database

# What a refresh of `metric_cagg_minute` does to the rows its drop deletes.
REFRESH_LIKE_DELETE = """
DELETE FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log
WHERE materialization_id = (SELECT mat_hypertable_id FROM _timescaledb_catalog.continuous_agg
                            WHERE user_view_name = 'metric_cagg_minute')
"""


async def _until_waiting_on_a_lock(database: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        for _ in range(300):
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database
            )
            if waiting:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the migration never waited for the refresh's rows")
    finally:
        await admin.close()


async def test_dropping_the_aggregates_outlasts_a_refresh_that_commits_under_it(pg_template: str) -> None:
    async with scratch_database(pg_template, label="race") as name:
        settings = DatabaseSettings(url=_pg_url(name))
        engine = create_engine(settings, database_url(settings))
        refresh = await asyncpg.connect(_pg_url(name))
        try:
            transaction = refresh.transaction()
            await transaction.start()
            assert await refresh.execute(REFRESH_LIKE_DELETE) != "DELETE 0"
            # 0008's downgrade drops metric_cagg_minute (and creates it again with 0007's columns).
            migration = asyncio.create_task(run_migration(engine, settings, ("downgrade", "0007")))
            await _until_waiting_on_a_lock(name)
            assert not migration.done()
            await transaction.commit()
            await asyncio.wait_for(migration, timeout=120)
            assert await refresh.fetchval("SELECT version_num FROM alembic_version") == "0007"
            recreated = "SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_name = $1"
            assert await refresh.fetchval(recreated, "metric_cagg_minute") == 1
        finally:
            await refresh.close()
            await engine.dispose()
