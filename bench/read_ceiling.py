"""Reads against their ceiling: the service next to a raw asyncpg handler, same SQL, same JSON.

    .venv/bin/python bench/read_ceiling.py                       # this tree against the raw handler
    .venv/bin/python bench/read_ceiling.py --base /work/wt/perf-base   # plus another checkout: before/after

Seeds (once; `--reseed` to redo) the PostgreSQL database `--database` (default
`observatory_bench_read`) with `observatory-api seed --traces N`, then starts on free ports of
127.0.0.1, each with granian and `--workers` workers: this tree's server (`ours`), optionally the
server of another checkout with its own `.venv` (`base`), and `bench/read_ceiling_raw.py` (`raw`).
The response cache is off (`cache.enabled: false`): every request does the work.

Routes: the spans page (`/api/v1/spans`, 50 most recent), one trace's detail (a trace of 4 to 8
spans) and `/alive`; each asked with `Accept-Encoding` identity, gzip and zstd. Load is bounded
by `--requests` and `--seconds` per burst, from `--concurrency` clients on one event loop. The
servers are driven in turn for each route and encoding, `--rounds` times (alternating, so drift
of a shared machine falls on all alike). Printed per route, encoding and server: requests/s,
p50/p95 latency, server CPU ms per request (launcher and workers, from /proc), and the ratio of
requests/s and of CPU per request to the raw handler's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from ingest_throughput import _wait_ready, free_port
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent
ENCODINGS = ("identity", "gzip", "zstd")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    headers: dict[str, str]


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0


def cpu_seconds(pgid: int) -> float:
    """CPU time of every process in the server's process group (launcher and workers); Linux only."""
    tick = os.sysconf("SC_CLK_TCK")
    used = 0.0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            used += (int(fields[11]) + int(fields[12])) / tick
    return used


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _seeded(url: str) -> int:
    try:
        connection = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return -1
    try:
        if await connection.fetchval("SELECT to_regclass('spans') IS NULL"):
            return 0
        return int(await connection.fetchval("SELECT count(*) FROM traces"))
    finally:
        await connection.close()


async def _pick_trace(url: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        return str(
            await connection.fetchval(
                "SELECT trace_id FROM traces WHERE span_count BETWEEN 4 AND 8 ORDER BY start_time DESC LIMIT 1"
            )
        )
    finally:
        await connection.close()


def prepare_database(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> str:
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string(hide_password=False)
    env["DATABASE_URL"] = url
    traces = asyncio.run(_seeded(url))
    if args.reseed and traces >= 0:
        asyncio.run(_admin(f'DROP DATABASE "{args.database}" WITH (FORCE)'))
        traces = -1
    if traces < 0:
        asyncio.run(_admin(f'CREATE DATABASE "{args.database}"'))
    if traces <= 0:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "observatory_api", "migrate"], env=env, cwd=workdir, check=True)
        seed = [sys.executable, "-m", "observatory_api", "seed", "--traces", str(args.traces)]
        subprocess.run(seed, env=env, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        print(f"seeded {args.database} with {args.traces:,} traces in {time.perf_counter() - started:.0f} s")
    return url


def start(name: str, command: list[str], env: dict[str, str], workdir: Path, headers: dict[str, str]) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env={**env, "API_METRICS_PORT": str(free_port())},
        cwd=workdir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(name, process, f"http://127.0.0.1:{port}", headers)
    try:
        _wait_ready(server.base, "/alive")
    except SystemExit:
        stop(server)
        raise SystemExit(f"{name} did not start on {server.base}") from None
    return server


def stop(server: Server) -> None:
    os.killpg(server.process.pid, signal.SIGTERM)
    server.process.wait(timeout=30)


async def burst(server: Server, path: str, encoding: str, args: argparse.Namespace) -> Tally:
    """At most `args.requests` requests in at most `args.seconds` from `args.concurrency` clients."""
    tally = Tally()
    headers = {**server.headers, "Accept-Encoding": encoding}
    remaining = args.requests
    deadline = time.monotonic() + args.seconds
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=server.base, headers=headers, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                began = time.perf_counter()
                async with client.stream("GET", path) as response:
                    size = sum([len(chunk) async for chunk in response.aiter_raw()])
                tally.latencies.append(time.perf_counter() - began)
                tally.bytes += size
                if response.status_code != 200:
                    tally.errors += 1

        cpu_before = cpu_seconds(server.process.pid)
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(args.concurrency)))
        tally.seconds = time.perf_counter() - started
        tally.cpu = cpu_seconds(server.process.pid) - cpu_before
    tally.requests = len(tally.latencies)
    return tally


def merge(into: Tally, tally: Tally) -> None:
    into.requests += tally.requests
    into.seconds += tally.seconds
    into.cpu += tally.cpu
    into.latencies += tally.latencies
    into.errors += tally.errors
    into.bytes += tally.bytes


def stop_all(servers: list[Server], workdir: Path) -> None:
    """Stop every server started, then remove the run's working directory."""
    for server in servers:
        stop(server)
    shutil.rmtree(workdir, ignore_errors=True)


def machine_at_the_end() -> str:
    """The first words of a run's header line: the machine, and its load average as the run ends."""
    load = os.getloadavg()
    return (
        f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end"
    )


def report(
    results: dict[tuple[str, str, str], Tally],
    names: list[str],
    routes: dict[str, str],
    encodings: list[str],
    reference: str = "raw",
) -> None:
    print()
    print(
        f"| route | encoding | server | req/s | p50 ms | p95 ms | CPU ms/req | bytes/resp | req/s vs {reference} "
        f"| CPU vs {reference} |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for route in routes:
        for encoding in encodings:
            raw = results[(route, encoding, reference)]
            raw_rate, raw_cpu = raw.requests / raw.seconds, 1000 * raw.cpu / raw.requests
            for name in names:
                tally = results[(route, encoding, name)]
                rate = tally.requests / tally.seconds
                cpu = 1000 * tally.cpu / tally.requests
                quantiles = statistics.quantiles(tally.latencies, n=20)
                errors = f" ({tally.errors} errors)" if tally.errors else ""
                p50 = 1000 * statistics.median(tally.latencies)
                cpu_ratio = f"{raw_cpu / cpu:.2f}" if cpu > 0 else "n/a"
                print(
                    f"| {route} | {encoding} | {name}{errors} | {rate:.1f} | {p50:.1f} | {1000 * quantiles[18]:.1f} "
                    f"| {cpu:.2f} | {tally.bytes // tally.requests:,} | {rate / raw_rate:.2f} | {cpu_ratio} |"
                )


SERVER_CONFIG = "cache:\n  enabled: false\nrate_limit:\n  roles:\n    developer: 100000000\n"


def bench_env(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    """The servers' environment: no Redis, this run's secrets, `args.log_level`, `args.rate_limit`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "OBSERVATORY_CONFIG": str(workdir / "api-config.yml"),
            "LOG_LEVEL": args.log_level,
            "JWT_SECRET": secrets.token_hex(32),
            "SECRET_KEY": secrets.token_hex(32),
            "RATE_LIMIT_ENABLED": "true" if args.rate_limit else "false",
        }
    )
    return env


def credential(kind: str, env: dict[str, str], workdir: Path) -> dict[str, str]:
    """Headers with a developer API key, or an access token signed with the run's JWT_SECRET."""
    if kind == "jwt":
        command = ["-m", "observatory_api", "token", "create", "--sub", "bench-read", "--role", "developer"]
    else:
        command = ["-m", "observatory_api", "keys", "create", "--name", "bench-read", "--role", "developer"]
    value = subprocess.run(
        [sys.executable, *command], env=env, cwd=workdir, capture_output=True, text=True, check=True
    ).stdout.strip()
    return {"Authorization": f"Bearer {value}"} if kind == "jwt" else {"X-API-Key": value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="observatory_bench_read")
    parser.add_argument("--traces", type=int, default=20_000, help="traces to seed (when the database is empty)")
    parser.add_argument("--reseed", action="store_true", help="drop and seed the database again")
    parser.add_argument("--base", type=Path, help="another checkout (with its .venv) to measure beside this one")
    parser.add_argument("--workers", type=int, default=1, help="granian workers per server")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="most requests per burst")
    parser.add_argument("--seconds", type=float, default=5.0, help="longest burst")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--encodings", default=",".join(ENCODINGS))
    parser.add_argument("--auth", choices=("key", "jwt"), default="key", help="an API key, or an access token")
    parser.add_argument(
        "--log-level", default="WARNING", help="the servers' LOG_LEVEL (INFO writes an access log line per request)"
    )
    parser.add_argument(
        "--rate-limit", action="store_true", help="rate limits on (per worker, in memory; limits too high to refuse)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="read-ceiling-"))
    (workdir / "api-config.yml").write_text(SERVER_CONFIG)
    env = bench_env(workdir, args)
    servers: list[Server] = []
    try:
        env["RAW_DATABASE_URL"] = prepare_database(args, env, workdir)
        auth = credential(args.auth, env, workdir)
        serve = ["-m", "observatory_api", "serve", "--workers", str(args.workers)]
        # This checkout's code, whatever the venv has installed (an editable install of another tree).
        servers.append(start("ours", [sys.executable, *serve], {**env, "PYTHONPATH": str(ROOT / "src")}, workdir, auth))
        if args.base:
            python = str(args.base.resolve() / ".venv" / "bin" / "python")
            # Its own code too: with a shared venv, the editable install may point at another tree.
            base_env = {**env, "PYTHONPATH": str(args.base.resolve() / "src")}
            servers.append(start("base", [python, *serve], base_env, workdir, auth))
        granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
        raw_env = {**env, "PYTHONPATH": str(ROOT)}
        raw_command = [*granian, "--workers", str(args.workers), "bench.read_ceiling_raw:app"]
        servers.append(start("raw", raw_command, raw_env, workdir, {}))
        trace_id = asyncio.run(_pick_trace(env["DATABASE_URL"]))
        routes = {"spans page": "/api/v1/spans", "trace detail": f"/api/v1/traces/{trace_id}", "alive": "/alive"}
        encodings = [e for e in args.encodings.split(",") if e]
        results: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
        for server in servers:  # warm-up: connection pools, prepared statements, caches of compiled SQL
            for path in routes.values():
                for _ in range(20):
                    httpx.get(f"{server.base}{path}", headers=server.headers, timeout=30)
        for round_number in range(args.rounds):
            order = servers if round_number % 2 == 0 else servers[::-1]
            for route, path in routes.items():
                for encoding in encodings:
                    for server in order:
                        merge(results[(route, encoding, server.name)], asyncio.run(burst(server, path, encoding, args)))
        print(
            f"{machine_at_the_end()}; {args.workers} worker(s) per server, "
            f"{args.concurrency} clients, bursts of <= {args.requests} requests / {args.seconds:.0f} s, "
            f"{args.rounds} rounds; database {args.database}, trace {trace_id}"
        )
        report(results, [server.name for server in servers], routes, encodings)
    finally:
        stop_all(servers, workdir)


if __name__ == "__main__":
    main()
