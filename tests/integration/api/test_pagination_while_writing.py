"""A keyset walk returns each trace exactly once, in order, while new traces keep arriving."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.demo.generator import generate
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import TelemetryWriter
from tests.conftest import auth_headers, make_settings

END = datetime(2026, 11, 1, tzinfo=UTC)


def batches(seed: int, end: datetime) -> list:
    return [spans for spans, _ in generate(traces=30, seed=seed, end=end, days=1, batch_size=10)]


def write(database: DatabaseSettings, span_batches: list) -> None:
    async def run() -> None:
        engine = create_engine(database, database_url(database))
        writer = TelemetryWriter(engine)
        for spans in span_batches:
            await writer.write_spans(spans)
        await engine.dispose()

    asyncio.run(run())


def test_walk_is_stable_while_traces_arrive(migrated_database: DatabaseSettings) -> None:
    write(migrated_database, batches(seed=1, end=END))
    # Later arrivals: some newer than every walked trace, some in the middle of the range.
    arrivals = batches(seed=2, end=END) + batches(seed=3, end=END + timedelta(hours=6))
    window = {"from": (END - timedelta(days=2)).isoformat(), "to": (END + timedelta(days=1)).isoformat()}
    settings = make_settings(migrated_database)
    with TestClient(create_app(settings)) as client:
        client.headers.update(auth_headers(settings))
        first = client.get("/api/v1/traces", params={**window, "limit": 7}).json()
        seen = [item["trace_id"] for item in first["data"]]
        starts = [item["start_time"] for item in first["data"]]
        cursor = first["next_cursor"]
        while cursor:
            if arrivals:
                write(migrated_database, [arrivals.pop()])
            page = client.get("/api/v1/traces", params={"limit": 7, "cursor": cursor}).json()
            seen += [item["trace_id"] for item in page["data"]]
            starts += [item["start_time"] for item in page["data"]]
            cursor = page["next_cursor"]
        assert len(seen) == len(set(seen))
        assert starts == sorted(starts, reverse=True)
        # Every trace stored before the walk began was returned.
        original = {s.trace_id for batch in batches(seed=1, end=END) for s in batch}
        assert original <= set(seen)
