"""A response-cache hit against Litestar's hello world: the floor of one request through this stack.

    .venv/bin/python bench/cached_get.py --base /work/wt/perf-base

Starts on free ports of 127.0.0.1, each under granian with one worker: this tree's server
(`ours`) and optionally another checkout's (`base`), both with the response cache on (in memory,
no Redis) and the database of `bench/read_ceiling.py` (`--database`, seeded there), and
`bench/hello_litestar.py` (`hello`: one route returning a small JSON object, no middleware). It
asks the servers in turn, `--rounds` times, a GET that the first request puts in the cache (so
every measured one is a hit: authentication, rate limit, cache lookup, headers, access log) and
hello's `/`, and prints CPU per request and its ratio to hello's (1.00 = as cheap as hello world).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import httpx
from read_ceiling import (
    ROOT,
    Server,
    Tally,
    bench_env,
    burst,
    credential,
    machine_at_the_end,
    merge,
    prepare_database,
    report,
    start,
    stop_all,
)

CACHED_PATH = "/api/v1/spans?limit=5"
CONFIG = "cache:\n  enabled: true\n  default_ttl_seconds: 3600\nrate_limit:\n  roles:\n    developer: 100000000\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="observatory_bench_read")
    parser.add_argument("--traces", type=int, default=20_000, help="traces to seed (when the database is empty)")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument(
        "--base", type=Path, help="another checkout (its .venv, or this Python on its src) to measure beside this one"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400, help="most requests per burst")
    parser.add_argument("--seconds", type=float, default=4.0, help="longest burst")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--auth", choices=("key", "jwt"), default="key")
    parser.add_argument("--log-level", default="INFO", help="the servers' LOG_LEVEL (INFO: an access log line each)")
    parser.add_argument("--rate-limit", action="store_true", help="rate limits on (in memory)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cached-get-"))
    (workdir / "api-config.yml").write_text(CONFIG)
    env = bench_env(workdir, args)
    servers: list[Server] = []
    try:
        prepare_database(args, env, workdir)
        auth = credential(args.auth, env, workdir)
        serve = ["-m", "observatory_api", "serve", "--workers", "1"]
        # This checkout's code, whatever the venv has installed (an editable install of another tree).
        servers.append(start("ours", [sys.executable, *serve], {**env, "PYTHONPATH": str(ROOT / "src")}, workdir, auth))
        if args.base:
            # Its own .venv when it has one, else this interpreter with the checkout's src first.
            python = args.base.resolve() / ".venv" / "bin" / "python"
            if python.exists():
                servers.append(start("base", [str(python), *serve], env, workdir, auth))
            else:
                base_env = {**env, "PYTHONPATH": str(args.base.resolve() / "src")}
                servers.append(start("base", [sys.executable, *serve], base_env, workdir, auth))
        granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--workers", "1"]
        hello_env = {**env, "PYTHONPATH": str(ROOT)}
        servers.append(start("hello", [*granian, "bench.hello_litestar:app"], hello_env, workdir, {}))
        paths = {server.name: "/" if server.name == "hello" else CACHED_PATH for server in servers}
        for server in servers:  # warm-up, and the entry every measured request hits
            for _ in range(20):
                response = httpx.get(f"{server.base}{paths[server.name]}", headers=server.headers, timeout=30)
                assert response.status_code == 200, response.text
        results: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
        for round_number in range(args.rounds):
            order = servers if round_number % 2 == 0 else servers[::-1]
            for server in order:
                tally = asyncio.run(burst(server, paths[server.name], "identity", args))
                merge(results[("cached GET", "identity", server.name)], tally)
        print(
            f"{machine_at_the_end()}; 1 worker per server, {args.concurrency} "
            f"clients, bursts of <= {args.requests} requests / {args.seconds:.0f} s, {args.rounds} rounds; "
            f"ours and base: GET {CACHED_PATH} (a response-cache hit), auth {args.auth}, LOG_LEVEL "
            f"{args.log_level}, rate limits {'on' if args.rate_limit else 'off'}; hello: GET /"
        )
        report(results, [server.name for server in servers], {"cached GET": ""}, ["identity"], reference="hello")
    finally:
        stop_all(servers, workdir)


if __name__ == "__main__":
    main()
