"""Read throughput of one instance against 1, 2 and 3 instances behind nginx, in one run.

    .venv/bin/python bench/scaling.py [--traces 5000] [--seconds 10] [--concurrency 16] [--rounds 2]

Seeds `--traces` demo traces into a fresh PostgreSQL database (127.0.0.1:5432), starts three
`serve` instances (one granian worker each) sharing it and Redis, and Debian's nginx with the
proxy settings compose deploys (deploy/nginx/observatory-proxy.conf). Then, alternating the
setups `--rounds` times, it drives `--concurrency` concurrent clients for `--seconds` against:
one instance directly, and nginx in front of 1, 2 and 3 instances. The requests are the
dashboard's: a trace list page and a metric query, with `Cache-Control: no-cache` so every
request does its work. Prints requests/s and p50/p95 latency per setup.

On a 2-core machine the instances, nginx, PostgreSQL and the load generator share the same two
cores: expect little gain from more instances here; what it shows is the cost of the proxy and
that throughput holds as instances are added.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import _create_database, _drop_database, _pg_url, auth_headers, make_settings  # noqa: E402
from tests.e2e.fleet import fleet_env, instance_workdirs, running_instances  # noqa: E402
from tests.e2e.nginx import load_balancer  # noqa: E402

from observatory_api.settings import DatabaseSettings  # noqa: E402

ADMIN = auth_headers(make_settings(DatabaseSettings()), "admin") | {"Cache-Control": "no-cache"}


async def drive(base: str, seconds: float, concurrency: int) -> list[float]:
    """Latencies (ms) of every request answered 200 in `seconds`; any other answer stops the run."""
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
    metric = {"metrics": [{"id": "request_count"}], "group_by": ["model"], **window}
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def client_loop(client: httpx.AsyncClient, number: int) -> None:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            if number % 2:
                answer = await client.get(f"{base}/api/v1/traces", params={"limit": 20, **window}, headers=ADMIN)
            else:
                answer = await client.post(f"{base}/api/v1/metrics/query", json=metric, headers=ADMIN)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
            latencies.append((time.perf_counter() - start) * 1000)
            number += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(client_loop(client, n) for n in range(concurrency)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    database = f"observatory_bench_scaling_{uuid.uuid4().hex[:6]}"
    asyncio.run(_create_database(database))
    prefix = f"obsbench_scaling_{os.getpid()}"
    env = fleet_env(_pg_url(database), "redis://127.0.0.1:6379/15", LOG_LEVEL="WARNING")
    config = (
        f"redis:\n  key_prefix: {prefix}\nrate_limit:\n  enabled: false\nserver:\n  trusted_proxies: ['127.0.0.1/32']\n"
    )
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: asyncio.run(_drop_database(database)))
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-scaling-{os.getpid()}"
        workdirs = instance_workdirs(tmp, 3, config)
        for command in (["migrate"], ["seed", "--traces", str(args.traces)]):
            done = subprocess.run(
                [sys.executable, "-m", "observatory_api", *command],
                cwd=workdirs[0],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
        running = stack.enter_context(running_instances(workdirs, env))
        instances, ports = running.servers, running.ports
        setups = {"direct, 1 instance": instances[0].base}
        for count in (1, 2, 3):
            balancer = stack.enter_context(load_balancer(tmp / f"nginx{count}", ports[:count]))
            setups[f"nginx, {count} instance{'s' if count > 1 else ''}"] = balancer.base
        for base in setups.values():  # warm every path once
            asyncio.run(drive(base, 1.0, 2))
        results: dict[str, list[float]] = {name: [] for name in setups}
        rates: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(args.rounds):
            for name, base in setups.items():
                latencies = asyncio.run(drive(base, args.seconds, args.concurrency))
                results[name].extend(latencies)
                rates[name].append(len(latencies) / args.seconds)
        print(
            f"{args.traces} demo traces, {args.concurrency} clients, {args.rounds} x {args.seconds:.0f} s per setup, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'setup':<22} {'req/s (each round)':<24} {'p50 ms':>8} {'p95 ms':>8}")
        for name in setups:
            cuts = statistics.quantiles(results[name], n=20)
            shown = " / ".join(f"{rate:.0f}" for rate in rates[name])
            print(f"{name:<22} {shown:<24} {statistics.median(results[name]):>8.1f} {cuts[18]:>8.1f}")


if __name__ == "__main__":
    main()
