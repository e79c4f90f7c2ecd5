"""How long a logout takes to reach every worker: a real `serve --workers 2` (SQLite, or
PostgreSQL with --database), auth.revocation_refresh_seconds as configured (default 1 s).

    .venv/bin/python bench/logout_propagation.py [--runs 10] [--clients 8] [--database postgresql://...]

Each run exchanges the demo key for a token pair, uses the access token on both workers, logs out,
then `--clients` clients keep presenting the access token. The figure is the time from the logout's
answer to the last 200 any client got after it (every answer after that was 401).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import start_server  # noqa: E402

WATCH_SECONDS = 4.0


async def one_run(base: str, key: str, clients: int) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        pair = (await http.post(f"{base}/api/v1/auth/token", headers={"X-API-Key": key})).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        for _ in range(10):  # both workers have seen it
            assert (await http.get(f"{base}/api/v1/auth/me", headers=bearer)).status_code == 200
        assert (await http.post(f"{base}/api/v1/auth/revoke", headers=bearer)).status_code == 204
        logged_out = time.monotonic()
        last_accepted = 0.0

        async def present() -> None:
            nonlocal last_accepted
            # A new connection each time: granian spreads them over both workers.
            async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as own:
                while time.monotonic() - logged_out < WATCH_SECONDS:
                    response = await own.get(f"{base}/api/v1/auth/me", headers=bearer)
                    if response.status_code == 200:
                        last_accepted = max(last_accepted, time.monotonic() - logged_out)

        await asyncio.gather(*(present() for _ in range(clients)))
        return last_accepted


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        (workdir / "api-config.yml").write_text("rate_limit:\n  auth_per_ip: 100000\n  anonymous_per_ip: 100000\n")
        env = {"DATABASE_URL": args.database} if args.database else {}
        with start_server(workdir, workers=2, demo_traces=20, env=env) as server:
            match = re.search(r"demo API key \(developer\): (obs_\S+)", server.log.read_text())
            assert match, server.log.read_text()
            delays = [await one_run(server.base, match.group(1), args.clients) for _ in range(args.runs)]
    print("last 200 after the logout (s): " + ", ".join(f"{d:.2f}" for d in delays))
    print(f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s over {args.runs} runs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database", help="a migrated PostgreSQL URL; default the SQLite file of a temporary folder")
    asyncio.run(main(parser.parse_args()))
