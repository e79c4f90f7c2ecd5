"""The start-up warm-up runs the whole ingest path and leaves nothing behind."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.tables import logs, sessions, spans, traces
from observatory_api.metrics.rollup_tables import ROLLUPS
from observatory_api.settings import DatabaseSettings, FeatureSettings, IngestSettings
from tests.conftest import make_settings
from tests.integration.ingest.helpers import ingest_warnings
from tests.timescaledb import ON_TIMESCALEDB

# The span and log inserts and the trace and session refreshes, and one upsert per rollup table
# where the writer keeps them (TimescaleDB's continuous aggregates replace them).
WRITE_STATEMENTS = 4 + (0 if ON_TIMESCALEDB else len(ROLLUPS))


def compiled_statements(client: AsyncTestClient) -> int:  # type: ignore[type-arg]
    """Statements the write engine has compiled (SQLAlchemy's per-engine cache)."""
    return len(client.app.state.resources.write_engine.sync_engine._compiled_cache)


async def test_the_warm_up_prepares_the_writer_and_stores_nothing(migrated_database: DatabaseSettings) -> None:
    warm = make_settings(migrated_database, features=FeatureSettings(ingest=True))
    cold = warm.replace(ingest=IngestSettings(warm_up=False, grpc_port=0))
    with ingest_warnings() as warnings:
        async with AsyncTestClient(create_app(warm)) as client:
            assert (await client.get("/ready")).status_code == 200
            prepared = compiled_statements(client)
    assert not warnings, [record.getMessage() for record in warnings]
    async with AsyncTestClient(create_app(cold)) as client:
        unprepared = compiled_statements(client)
    # The inserts, the summary refreshes and the rollups were compiled before the first export.
    assert prepared >= unprepared + WRITE_STATEMENTS, (prepared, unprepared)
    owner = create_engine(migrated_database, database_url(migrated_database))
    try:
        async with owner.connect() as conn:
            for table in (spans, traces, sessions, logs):
                assert (await conn.execute(select(func.count()).select_from(table))).scalar_one() == 0, table.name
    finally:
        await owner.dispose()
