"""Server CPU per span of OTLP ingest with realistic payloads (bench/realistic_otlp.py), before/after.

    .venv/bin/python bench/ingest_cpu.py --backend postgresql --spans 20000
    .venv/bin/python bench/ingest_cpu.py --backend sqlite --base /work/wt/base/src --rounds 4
    .venv/bin/python bench/ingest_cpu.py --profile --backend postgresql --spans 10000   # cProfile, in-process

Pre-encodes `--spans` spans as protobuf export requests of `--batch` spans (so the client is not
the limit), starts one server per source tree (`this` = this checkout's src, `base` = `--base`, a
src folder put first on PYTHONPATH) with `--workers` granian workers on a fresh database each, and
sends them the same requests from `--concurrency` clients of one event loop. The dataset is cut
into `--rounds` parts; each round sends its part to each server in turn (the order alternates per
round), so the drift of a shared machine falls on both. Printed per round and server: spans
stored, spans/s, server CPU (launcher and workers, /proc) ms per span, and PostgreSQL's backends'.

`--profile` instead runs `ingest_traces` (decode, map, write) in this process under cProfile on a
fresh database, the requests `--concurrency` at a time, and prints the top of the profile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ingest_throughput import _cpu_seconds, _wait_ready, free_port
from bench.realistic_otlp import export_bodies

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


class Server:
    def __init__(self, name: str, src: Path, backend: str, workers: int) -> None:
        self.name, self.backend = name, backend
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ingest-cpu-{name}-"))
        self.database = f"observatory_bench_cpu_{uuid.uuid4().hex[:6]}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTHONPATH")}
        env.update(
            {
                "PYTHONPATH": str(src),
                "INGEST_ENABLED": "true",
                "INGEST_GRPC_PORT": str(free_port()),
                "API_METRICS_PORT": str(free_port()),
                "LOG_LEVEL": "WARNING",
                "JWT_SECRET": secrets.token_hex(32),
                "SECRET_KEY": secrets.token_hex(32),
                "RATE_LIMIT_ENABLED": "false",
            }
        )
        if backend == "postgresql":
            asyncio.run(_admin(f'CREATE DATABASE "{self.database}"'))
            env["DATABASE_URL"] = make_url(POSTGRES).set(database=self.database).render_as_string(hide_password=False)
        run = {"env": env, "cwd": self.workdir, "check": True}
        subprocess.run([sys.executable, "-m", "observatory_api", "migrate"], **run, stdout=subprocess.DEVNULL)  # type: ignore[call-overload]
        self.key = subprocess.run(
            [sys.executable, "-m", "observatory_api", "keys", "create", "--name", "bench", "--role", "ingest"],
            **run,  # type: ignore[call-overload]
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = free_port()
        command = [sys.executable, "-m", "observatory_api", "serve", "--port", str(port), "--workers", str(workers)]
        self.process = subprocess.Popen(
            command, env=env, cwd=self.workdir, start_new_session=True, stdout=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        _wait_ready(f"http://127.0.0.1:{port}")

    def cpu(self) -> dict[str, float]:
        return _cpu_seconds(self.process.pid, self.database)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        if self.backend == "postgresql":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        shutil.rmtree(self.workdir, ignore_errors=True)


async def _send(url: str, key: str, bodies: list[tuple[int, bytes]], concurrency: int) -> int:
    queue = list(reversed(bodies))
    accepted = 0
    headers = {"content-type": "application/x-protobuf", "x-api-key": key}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal accepted
        while queue:
            count, body = queue.pop()
            answer = await http.post(url, content=body, headers=headers)
            answer.raise_for_status()
            accepted += count

    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return accepted


def _round(server: Server, bodies: list[tuple[int, bytes]], concurrency: int) -> tuple[int, float, dict[str, float]]:
    before = server.cpu()
    started = time.perf_counter()
    sent = asyncio.run(_send(server.url, server.key, bodies, concurrency))
    elapsed = time.perf_counter() - started
    after = server.cpu()
    return sent, elapsed, {side: after[side] - before.get(side, 0.0) for side in after}


def measure(args: argparse.Namespace, bodies: list[tuple[int, bytes]]) -> None:
    sources = {"this": ROOT / "src"}
    if args.base:
        sources["base"] = Path(args.base)
    servers = [Server(name, src, args.backend, args.workers) for name, src in sources.items()]
    per_span: dict[str, list[float]] = {name: [] for name in sources}
    pg_per_span: dict[str, list[float]] = {name: [] for name in sources}
    try:
        # A warm-up part first (imports, prepared statements, the price history), not counted.
        warm = bodies[: args.warmup]
        for server in servers:
            _round(server, warm, args.concurrency)
        rest = bodies[args.warmup :]
        size = -(-len(rest) // args.rounds)
        for number in range(args.rounds):
            part = rest[number * size : (number + 1) * size]
            if not part:  # fewer requests than rounds: the last rounds would send nothing
                break
            order = servers if number % 2 == 0 else list(reversed(servers))
            for server in order:
                sent, elapsed, cpu = _round(server, part, args.concurrency)
                per_span[server.name].append(cpu["server"] * 1000 / sent)
                pg_per_span[server.name].append(cpu["postgres"] * 1000 / sent)
                print(
                    f"round {number + 1} {server.name:>4}: {sent:,} spans in {elapsed:.1f} s = {sent / elapsed:,.0f} "
                    f"spans/s; server CPU {cpu['server'] * 1000 / sent:.3f} ms/span"
                    + (f", postgres {cpu['postgres'] * 1000 / sent:.3f} ms/span" if args.backend != "sqlite" else ""),
                    flush=True,
                )
        for name in sources:
            print(
                f"{name}: server CPU ms/span median {statistics.median(per_span[name]):.3f} "
                f"(min {min(per_span[name]):.3f}, max {max(per_span[name]):.3f})"
                + (f"; postgres median {statistics.median(pg_per_span[name]):.3f}" if args.backend != "sqlite" else "")
            )
    finally:
        for server in servers:
            server.stop()


async def _profiled(args: argparse.Namespace, bodies: list[tuple[int, bytes]], database_url: str) -> None:
    from observatory_api.db.engine import create_engine
    from observatory_api.db.migrate import upgrade
    from observatory_api.ingest.limits import DecodeLimits
    from observatory_api.ingest.otlp import PROTOBUF
    from observatory_api.ingest.service import ingest_traces
    from observatory_api.settings.sections import DatabaseSettings
    from observatory_api.storage import TelemetryWriter

    settings = DatabaseSettings(url=database_url)
    engine = create_engine(settings, make_url(database_url))
    await upgrade(engine, settings)
    writer = TelemetryWriter(engine)
    limits = DecodeLimits(max_resources=1000, max_scopes=1000, max_records=100_000, max_values_per_record=100_000)
    for _, body in bodies[: args.warmup]:
        await ingest_traces(writer, body, PROTOBUF, limits)

    # cProfile sees one thread: the work the server hands to threads runs inline here instead.
    async def inline(function: Any, /, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    asyncio.to_thread = inline
    rest = bodies[args.warmup :]
    profile = cProfile.Profile(time.thread_time)  # CPU, not wall time: the machine is shared
    started, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    for start in range(0, len(rest), args.concurrency):
        group = rest[start : start + args.concurrency]
        await asyncio.gather(*(ingest_traces(writer, body, PROTOBUF, limits) for _, body in group))
    profile.disable()
    spans = sum(count for count, _ in rest)
    print(
        f"{spans:,} spans in {time.perf_counter() - started:.1f} s; "
        f"this process {(time.process_time() - cpu) * 1000 / spans:.3f} CPU ms/span (profiled)"
    )
    await engine.dispose()
    stats = pstats.Stats(profile)
    stats.sort_stats(args.sort).print_stats(args.top)


def profile(args: argparse.Namespace, bodies: list[tuple[int, bytes]]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ingest-cpu-profile-"))
    database = f"observatory_bench_cpu_{uuid.uuid4().hex[:6]}"
    if args.backend == "postgresql":
        asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
        url = make_url(POSTGRES).set(database=database, drivername="postgresql+asyncpg")
        database_url = url.render_as_string(hide_password=False)
    else:
        database_url = f"sqlite+aiosqlite:///{workdir}/observatory.db"
    try:
        asyncio.run(_profiled(args, bodies, database_url))
    finally:
        if args.backend == "postgresql":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per export request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--workers", type=int, default=1, help="granian workers per server")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=4, help="requests sent first to each server, not counted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timing", choices=["live", "day"], default="live", help="see bench/realistic_otlp.py")
    parser.add_argument("--rate", type=float, default=5000, help="live timing: spans/s of the simulated service")
    parser.add_argument("--base", help="another checkout's src folder: measured in turn with this one")
    parser.add_argument("--profile", action="store_true", help="cProfile in-process instead (see above)")
    parser.add_argument("--sort", default="cumulative", help="--profile: pstats sort key")
    parser.add_argument("--top", type=int, default=60, help="--profile: lines of the profile printed")
    args = parser.parse_args()
    started = time.perf_counter()
    bodies = export_bodies(spans=args.spans, batch=args.batch, seed=args.seed, timing=args.timing, rate=args.rate)
    size = sum(len(body) for _, body in bodies)
    print(
        f"{sum(count for count, _ in bodies):,} spans in {len(bodies)} requests, {size / 1e6:.1f} MB "
        f"({size / sum(count for count, _ in bodies):,.0f} B/span), made in {time.perf_counter() - started:.1f} s; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if args.profile:
        profile(args, bodies)
    else:
        measure(args, bodies)
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
