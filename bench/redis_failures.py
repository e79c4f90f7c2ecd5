"""Rate limits across a Redis restart and on a cold start, against a real 2-worker granian server.

    .venv/bin/python bench/redis_failures.py restart [--limit 20] [--window 5] [--seconds 30]
    .venv/bin/python bench/redis_failures.py cold [--limit 15] [--requests 45] [--runs 5] [--credential jwt|key]
        [--redis-password P] [--database postgresql://...]

Each run starts its own `redis-server` on a free port (`--save "" --appendonly no`, as compose
runs it) and `observatory-api serve --demo --workers 2` in a temporary folder (SQLite), with
`rate_limit.roles.developer = --limit` and `rate_limit.window = --window`. Every request is
`GET /api/v1/models` with one developer's JWT. The shared Redis on 6379 is never touched.

`restart`: `--clients` concurrent clients send requests for `--seconds`; half-way the Redis server
is killed and a new one started on the same port (no persistence: the counters are gone). Prints
the requests that passed in each window, as the server counted them (a window starts at the first
request counted in it; each response's `RateLimit-Reset` tells which window it fell in), those that
passed without a limit check (Redis skipped), and the statuses.
`cold`: right after the server answers `/ready`, `--requests` requests at once; prints how many
passed, per run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from redis import asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import AUTH, free_port, start_server  # noqa: E402


@contextlib.contextmanager
def redis_server(port: int, workdir: Path, password: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = start_redis(port, workdir, password)
    try:
        yield process
    finally:
        stop_redis(process)


def start_redis(port: int, workdir: Path, password: str | None = None) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    command += ["--requirepass", password] if password else []
    process = subprocess.Popen([*command, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def config(workdir: Path, *, limit: int, window: int) -> None:
    (workdir / "api-config.yml").write_text(
        f"redis:\n  key_prefix: bench\nrate_limit:\n  window: {window}\n  roles:\n    developer: {limit}\n"
    )


BUCKET = "bench:ratelimit:caller:jwt:test-developer"  # the role bucket of AUTH's subject


async def restart(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        config(workdir, limit=args.limit, window=args.window)
        port = free_port()
        servers = [start_redis(port, workdir)]  # the one running last is stopped at the end
        try:
            env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
            with start_server(workdir, workers=2, demo_traces=20, env=env) as server:
                results, samples = await _load_with_restart(server.base, args, port, workdir, servers)
        finally:
            stop_redis(servers[-1])
    _report_windows(results, samples, args)


async def _load_with_restart(
    base: str, args: argparse.Namespace, port: int, workdir: Path, servers: list[subprocess.Popen[bytes]]
) -> tuple[list[tuple[float, int, bool]], list[tuple[float, int, int]]]:
    """(time, status, counted) of every response, and (time, count, ms left) of the bucket in Redis."""
    results: list[tuple[float, int, bool]] = []
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    stop_at = started + args.seconds
    restart_at = started + args.seconds / 2
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            try:
                response = await http.get(f"{base}/api/v1/models", headers=AUTH)
            except httpx.HTTPError:
                results.append((time.monotonic() - started, 0, False))
                continue
            counted = "ratelimit-remaining" in response.headers
            results.append((time.monotonic() - started, response.status_code, counted))
            await asyncio.sleep(args.pause)

    async def restarter() -> None:
        await asyncio.sleep(restart_at - time.monotonic())
        stop_redis(servers[-1])
        killed = time.monotonic() - started
        servers.append(await asyncio.to_thread(start_redis, port, workdir))
        print(f"redis killed at {killed:.2f} s, listening again at {time.monotonic() - started:.2f} s")

    async def monitor() -> None:
        # What Redis itself counted: the script counts only the requests it lets through.
        watcher = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            while time.monotonic() < stop_at + 1:
                with contextlib.suppress(aioredis.RedisError, OSError):
                    count, left = await watcher.get(BUCKET), await watcher.pttl(BUCKET)
                    if count is not None and left > 0:
                        samples.append((time.monotonic() - started, int(count), int(left)))
                await asyncio.sleep(0.01)
        finally:
            await watcher.aclose()

    async with httpx.AsyncClient(timeout=20, limits=limits) as http:
        await asyncio.gather(restarter(), monitor(), *(client(http) for _ in range(args.clients)))
    return results, samples


def _report_windows(
    results: list[tuple[float, int, bool]], samples: list[tuple[float, int, int]], args: argparse.Namespace
) -> None:
    # A window begins when the bucket's time left jumps up (a new key); it started at the sample
    # time less the time already spent of it. Requests that passed without a limit check (Redis
    # skipped) are put in the window that was running when they were answered.
    windows: list[list[float]] = []  # [start, end, counted]
    previous_left = None
    for at, count, left in samples:
        if previous_left is None or left > previous_left + 50 or (windows and at > windows[-1][1]):
            start = at - (args.window * 1000 - left) / 1000
            windows.append([start, start + args.window, 0])
        windows[-1][2] = max(windows[-1][2], count)
        previous_left = left
    unchecked = [at for at, status, counted in results if status == 200 and not counted]
    statuses = collections.Counter(status for _, status, _ in results)
    print(f"statuses: {dict(statuses)}")
    for start, end, counted in windows:
        skipped = sum(1 for at in unchecked if start <= at < end)
        print(
            f"window {start:5.2f}-{end:5.2f} s: {int(counted) + skipped} passed "
            f"({int(counted)} counted by Redis, {skipped} with Redis skipped; limit {args.limit})"
        )
    outside = [at for at in unchecked if not any(start <= at < end for start, end, _ in windows)]
    if outside:
        span = f"{min(outside):.2f}-{max(outside):.2f} s"
        print(f"passed with Redis skipped, outside any window: {len(outside)} at {span}")


async def cold(args: argparse.Namespace) -> None:
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            config(workdir, limit=args.limit, window=60)
            port = free_port()
            with redis_server(port, workdir, args.redis_password):
                env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
                if args.redis_password:
                    env["REDIS_PASSWORD"] = args.redis_password
                if args.database:
                    env["DATABASE_URL"] = args.database
                with start_server(workdir, workers=2, demo_traces=20, env=env) as server:
                    headers = _credential(args.credential, server.log)
                    limits = httpx.Limits(max_connections=args.requests, max_keepalive_connections=0)
                    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
                        responses = await asyncio.gather(
                            *(http.get(f"{server.base}/api/v1/models", headers=headers) for _ in range(args.requests))
                        )
        statuses = collections.Counter(r.status_code for r in responses)
        unchecked = sum(1 for r in responses if r.status_code == 200 and "ratelimit-limit" not in r.headers)
        print(
            f"run {run + 1}: {statuses[200]} of {args.requests} passed (limit {args.limit}); "
            f"{unchecked} without a limit check; statuses {dict(statuses)}"
        )


def _credential(kind: str, log: Path) -> dict[str, str]:
    """The test JWT, or the developer key `serve --demo` printed."""
    if kind == "jwt":
        return AUTH
    match = re.search(r"demo API key \(developer\): (obs_\S+)", log.read_text())
    if match is None:
        raise SystemExit("no demo key in the server log")
    return {"X-API-Key": match.group(1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    restart_parser = commands.add_parser("restart")
    restart_parser.add_argument("--limit", type=int, default=20)
    restart_parser.add_argument("--window", type=int, default=5)
    restart_parser.add_argument("--seconds", type=float, default=30.0)
    restart_parser.add_argument("--clients", type=int, default=8)
    restart_parser.add_argument("--pause", type=float, default=0.01)
    cold_parser = commands.add_parser("cold")
    cold_parser.add_argument("--limit", type=int, default=15)
    cold_parser.add_argument("--requests", type=int, default=45)
    cold_parser.add_argument("--runs", type=int, default=5)
    cold_parser.add_argument("--credential", choices=("jwt", "key"), default="jwt")
    cold_parser.add_argument("--redis-password", help="run Redis with --requirepass (an AUTH per connection)")
    cold_parser.add_argument("--database", help="a PostgreSQL URL (migrated and seeded by the first run)")
    args = parser.parse_args()
    asyncio.run(restart(args) if args.command == "restart" else cold(args))


if __name__ == "__main__":
    main()
