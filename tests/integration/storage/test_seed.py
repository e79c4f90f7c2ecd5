from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.tables import traces
from observatory_api.demo.generator import generate
from observatory_api.demo.seed import database_is_empty, seed_demo

END = datetime(2025, 5, 1, tzinfo=UTC)


async def test_seeding_stores_the_generated_records_once(migrated_engine: AsyncEngine) -> None:
    generated = list(generate(traces=1500, seed=5, end=END, days=10))
    reports: list[tuple[int, int]] = []
    assert await database_is_empty(migrated_engine)

    result = await seed_demo(
        migrated_engine, traces=1500, seed=5, end=END, days=10, progress=lambda *a: reports.append(a)
    )

    assert result.traces == 1500
    assert result.spans == sum(len(spans) for spans, _ in generated)
    assert result.logs == sum(len(logs) for _, logs in generated)
    assert reports == [(1000, 1500), (1500, 1500)]
    assert not await database_is_empty(migrated_engine)
    async with migrated_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(traces)) == 1500

    again = await seed_demo(migrated_engine, traces=1500, seed=5, end=END, days=10)
    assert (again.spans, again.logs) == (0, 0)
