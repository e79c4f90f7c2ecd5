"""Reads through a real streaming replica against reads on the primary alone, and a replica killed
under load: a real `serve --workers 1` each time, the replica made by tests/replica.py (needs the
test PostgreSQL on 127.0.0.1:5432 and `host replication postgres 127.0.0.1/32 trust` in its pg_hba.conf).

    .venv/bin/python bench/replica_reads.py [--seconds 10] [--clients 8] [--traces 200]

For each setup (the primary alone, one replica, two replicas, in one run), `--clients` clients read
trace details (`GET /api/v1/traces/{id}`) for `--seconds`: requests/s, p50 and p95. Then, with
the replica in rotation, it is killed (immediate shutdown) halfway through a run: the answers that
were not 200, and how long until `db_replica_up` said 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import AUTH, RunningServer, start_server  # noqa: E402
from tests.replica import StreamingReplica, primary_connection, streaming_replica  # noqa: E402

from observatory_api.db.engine import create_engine, database_url  # noqa: E402
from observatory_api.db.migrate import upgrade  # noqa: E402
from observatory_api.demo.seed import seed_demo  # noqa: E402
from observatory_api.settings import DatabaseSettings  # noqa: E402


async def _database(traces: int) -> str:
    name = f"observatory_bench_replica_{uuid.uuid4().hex[:8]}"
    admin = await primary_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    settings = DatabaseSettings(url=f"postgresql://postgres@127.0.0.1:5432/{name}")
    engine = create_engine(settings, database_url(settings))
    try:
        await upgrade(engine, settings)
        await seed_demo(engine, traces=traces, seed=5, days=1)
    finally:
        await engine.dispose()
    return name


async def _drop(name: str) -> None:
    admin = await primary_connection()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _trace_ids(server: RunningServer) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base, headers=AUTH, timeout=30) as client:
        listed = await client.get("/api/v1/traces", params={"limit": 100})
        return [trace["trace_id"] for trace in listed.json()["data"]]


async def _load(
    server: RunningServer, ids: list[str], seconds: float, clients: int
) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def client_loop(offset: int) -> None:
        async with httpx.AsyncClient(base_url=server.base, headers=AUTH, timeout=30) as client:
            turn = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = await client.get(f"/api/v1/traces/{ids[turn % len(ids)]}")
                latencies.append(time.perf_counter() - started)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                turn += 1

    await asyncio.gather(*(client_loop(offset) for offset in range(clients)))
    return latencies, statuses


def _report(label: str, latencies: list[float], statuses: dict[int, int], seconds: float) -> None:
    cuts = statistics.quantiles(latencies, n=20)
    print(
        f"{label}: {len(latencies) / seconds:.0f} req/s, p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p95 {cuts[18] * 1000:.1f} ms, statuses {dict(sorted(statuses.items()))}"
    )


async def _wait_for_up(server: RunningServer, replica: StreamingReplica, value: float) -> float:
    """Seconds until the metrics port shows `db_replica_up{replica} == value` (scraped every 50 ms)."""
    started = time.monotonic()
    series = f'db_replica_up{{replica="{replica.name}"}} '
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(1200):
            text = (await client.get(server.metrics)).text
            if any(line == f"{series}{value}" for line in text.splitlines()):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise SystemExit(f"db_replica_up never showed {value}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--traces", type=int, default=200)
    args = parser.parse_args()
    async with streaming_replica() as replica, streaming_replica() as second:
        name = await _database(args.traces)
        try:
            await replica.caught_up()
            await second.caught_up()
            # Rate limits off: the figure is the read path's, not the limiter's.
            primary_env = {
                "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
                "RATE_LIMIT_ENABLED": "false",
            }
            with (
                tempfile.TemporaryDirectory() as folder,
                start_server(Path(folder), workers=1, env=primary_env) as server,
            ):
                ids = await _trace_ids(server)
                await _load(server, ids, 2, args.clients)  # warm-up
                _report("primary only", *await _load(server, ids, args.seconds, args.clients), args.seconds)
            both_env = {**primary_env, "DB_REPLICA_URLS": f"{replica.url(name)},{second.url(name)}"}
            with (
                tempfile.TemporaryDirectory() as folder,
                start_server(Path(folder), workers=1, env=both_env) as server,
            ):
                await _wait_for_up(server, replica, 1.0)
                await _wait_for_up(server, second, 1.0)
                await _load(server, ids, 2, args.clients)
                _report("two replicas", *await _load(server, ids, args.seconds, args.clients), args.seconds)
            replica_env = {**primary_env, "DB_REPLICA_URLS": replica.url(name)}
            with (
                tempfile.TemporaryDirectory() as folder,
                start_server(Path(folder), workers=1, env=replica_env) as server,
            ):
                await _wait_for_up(server, replica, 1.0)
                await _load(server, ids, 2, args.clients)
                _report("one replica", *await _load(server, ids, args.seconds, args.clients), args.seconds)
                run = asyncio.create_task(_load(server, ids, args.seconds, args.clients))
                await asyncio.sleep(args.seconds / 2)
                killed = time.monotonic()
                await asyncio.to_thread(replica.stop)
                noticed = time.monotonic() - killed + await _wait_for_up(server, replica, 0.0)
                _report("replica killed halfway", *await run, args.seconds)
                print(f"db_replica_up showed 0 {noticed:.2f} s after the kill")
            # Once more at the end: the shared primary's load from other work changes over a run.
            with (
                tempfile.TemporaryDirectory() as folder,
                start_server(Path(folder), workers=1, env=primary_env) as server,
            ):
                await _load(server, ids, 2, args.clients)
                _report("primary only, again", *await _load(server, ids, args.seconds, args.clients), args.seconds)
        finally:
            await _drop(name)


if __name__ == "__main__":
    asyncio.run(main())
