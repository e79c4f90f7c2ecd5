"""Seeding a database with demo telemetry, batch by batch through the TelemetryWriter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.capabilities import DatabaseCapabilities, detect_capabilities
from observatory_api.db.tables import traces as traces_table
from observatory_api.demo.generator import generate
from observatory_api.metrics.continuous_aggregates import AGGREGATE_VIEWS
from observatory_api.storage.writer import TelemetryWriter


class SeedResult(msgspec.Struct, frozen=True, kw_only=True):
    """Traces generated, and spans and logs newly stored (0 for rows that were already there)."""

    traces: int
    spans: int
    logs: int


async def seed_demo(
    engine: AsyncEngine,
    *,
    traces: int,
    seed: int = 42,
    end: datetime | None = None,
    days: int = 30,
    progress: Callable[[int, int], None] | None = None,
    capabilities: DatabaseCapabilities | None = None,
    on_stored: Callable[[datetime, datetime], None] | None = None,
) -> SeedResult:
    """Generate `traces` demo traces ending at `end` (default: now) and store them.

    `progress(done, total)` is called after each stored batch with the traces written so far.
    Seeding twice with the same arguments (the end time included) stores nothing the second time;
    with another end time, other ids (`demo.ids`), so nothing already stored is written again.
    `capabilities`: what the database can do, asked of it when not given. `on_stored`: the
    writer's, told what each commit touched (the CLI publishes it to the servers' metric caches).
    """
    if capabilities is None:
        # With TimescaleDB's continuous aggregates the rollup tables are not read: not written either.
        capabilities = await detect_capabilities(engine, continuous_aggregates=AGGREGATE_VIEWS)
    writer = TelemetryWriter(engine, capabilities=capabilities, on_stored=on_stored)
    end = end or datetime.now(UTC)
    done = spans = logs = 0
    for span_batch, log_batch in generate(traces=traces, seed=seed, end=end, days=days):
        spans += await writer.write_spans(span_batch)
        logs += await writer.write_logs(log_batch)
        done += sum(1 for span in span_batch if span.parent_span_id is None)
        if progress is not None:
            progress(done, traces)
    return SeedResult(traces=done, spans=spans, logs=logs)


async def stored_traces(engine: AsyncEngine) -> int:
    """How many traces the database holds (the CLI's `seed` adds to a non-empty one only when asked)."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(traces_table)) or 0)


async def database_is_empty(engine: AsyncEngine) -> bool:
    """True when no trace is stored yet (the CLI seeds only an empty database unless forced)."""
    async with engine.connect() as conn:
        return (await conn.scalar(select(traces_table.c.trace_id).limit(1))) is None
