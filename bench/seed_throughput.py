"""Seeding throughput: demo traces written through the TelemetryWriter, on PostgreSQL and SQLite.

    .venv/bin/python bench/seed_throughput.py --traces 250000 --backend postgresql

Creates a scratch database (PostgreSQL: `observatory_bench_*` on OBSERVATORY_BENCH_POSTGRES_URL,
default postgres@127.0.0.1; SQLite: a temporary file), migrates it, seeds it, prints spans per
second, and drops it. Timings include generating the data in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade
from observatory_api.demo.seed import seed_demo
from observatory_api.settings import DatabaseSettings

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
END = datetime(2026, 11, 20, tzinfo=UTC)


async def run(backend: str, traces: int) -> None:
    name = f"observatory_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        if backend == "postgresql":
            admin = await asyncpg.connect(ADMIN_URL)
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            settings = DatabaseSettings(url=url)
        else:
            settings = DatabaseSettings(sqlite_path=str(Path(folder) / "bench.db"))
        engine = create_engine(settings, database_url(settings))
        try:
            await upgrade(engine, settings)
            started = time.perf_counter()
            result = await seed_demo(engine, traces=traces, seed=42, end=END, days=30)
            elapsed = time.perf_counter() - started
        finally:
            await engine.dispose()
            if backend == "postgresql":
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
    print(
        f"{backend}: {result.traces:,} traces, {result.spans:,} spans, {result.logs:,} logs "
        f"in {elapsed:.1f} s = {result.spans / elapsed:,.0f} spans/s "
        f"({platform.node()}, {os.cpu_count()} cores)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    for backend in ("postgresql", "sqlite") if args.backend == "both" else (args.backend,):
        asyncio.run(run(backend, args.traces))


if __name__ == "__main__":
    main()
