"""The service's own CPU per request, in process: no server, no network, no other process.

    .venv/bin/python bench/request_overheads.py --base /work/wt/perf-base

On a shared machine a server's CPU per request from /proc moves 10-20 % with the load; here one
process drives the app through httpx's ASGITransport (lifespan run by Litestar) and counts its
own `time.process_time()` per request, client included (the same for both checkouts). With
`--base`, this script runs under the other checkout's `.venv/bin/python` in turns with this one,
`--rounds` times each, so both see the same load. Cases: a response-cache hit (the floor of one
request through the stack), the spans page and a trace's detail with the cache off; each with an
API key or an access token; rate limits on (in memory) and the access log at INFO, written to
/dev/null.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from checkout_children import alternated, with_base
from sqlalchemy import text
from sqlalchemy.engine import make_url

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.security.api_keys import ApiKeyAdmin
from observatory_api.security.tokens import TokenService
from observatory_api.settings import load_settings

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "bench-request-overheads-jwt-secret-0123456789abcdef"
SECRET_KEY = "bench-request-overheads-secret-key-0123456789abcdef"
PICK_TRACE = "SELECT trace_id FROM traces WHERE span_count BETWEEN 4 AND 8 ORDER BY start_time DESC LIMIT 1"


async def measure(database: str, requests: int) -> dict[str, float]:
    """CPU ms per request of each case, in this process (the checkout on PYTHONPATH)."""
    url = make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    os.environ.update({"DATABASE_URL": url, "JWT_SECRET": JWT_SECRET, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "INFO"})
    os.environ.pop("REDIS_URL", None)
    found: dict[str, float] = {}
    for cache in (True, False):
        os.environ["OBSERVATORY_CONFIG"] = write_config(cache)
        settings = load_settings()
        engine = create_engine(settings.database, database_url(settings.database))
        try:
            raw_key, _ = await ApiKeyAdmin(engine).create(
                name="bench-overheads", role="developer", secret_key=SECRET_KEY, expires_at=None
            )
            async with engine.connect() as conn:
                trace_id = (await conn.execute(text(PICK_TRACE))).scalar_one()
        finally:
            await engine.dispose()
        token = TokenService.from_settings(settings).issue(subject="bench", role="developer", kind="access").token
        app = create_app(settings)
        discard_logs()
        routes = (
            {"cached GET": "/api/v1/spans?limit=5"}
            if cache
            else {
                "spans page": "/api/v1/spans",
                "trace detail": f"/api/v1/traces/{trace_id}",
            }
        )
        credentials = {"key": {"X-API-Key": raw_key}, "jwt": {"Authorization": f"Bearer {token}"}}
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for route, path in routes.items():
                    for auth, headers in credentials.items():
                        for _ in range(20):
                            response = await client.get(path, headers=headers)
                            assert response.status_code == 200, response.text
                        started = time.process_time()
                        for _ in range(requests):
                            await client.get(path, headers=headers)
                        found[f"{route} ({auth})"] = 1000 * (time.process_time() - started) / requests
    return found


def write_config(cache: bool) -> str:
    config = Path(tempfile.gettempdir()) / f"request-overheads-{os.getpid()}-{cache}.yml"
    config.write_text(f"cache:\n  enabled: {str(cache).lower()}\nrate_limit:\n  roles:\n    developer: 100000000\n")
    return str(config)


def discard_logs() -> None:
    """The access log at INFO: formatted, then written to /dev/null."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  # lives as long as the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="observatory_bench_read", help="seeded by bench/read_ceiling.py")
    parser.add_argument("--base", type=Path, help="another checkout (with its .venv) to measure beside this one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="requests per case and round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.database, args.requests))))
        return
    pythons = with_base(Path(__file__).resolve().parent.parent, args.base)
    child_args = ["--database", args.database, "--requests", str(args.requests)]
    samples = alternated(__file__, pythons, args.rounds, child_args)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; {args.rounds} rounds of {args.requests}")
    names = list(pythons)
    print(
        "| case | "
        + " | ".join(f"{n} CPU ms/req (median)" for n in names)
        + " | "
        + " | ".join(f"{n} samples" for n in names)
        + " |"
    )
    print("| --- |" + " --- |" * (2 * len(names)))
    for case in samples["ours"]:
        medians = [f"{statistics.median(samples[n][case]):.3f}" for n in names]
        spreads = [", ".join(f"{v:.2f}" for v in samples[n][case]) for n in names]
        print(f"| {case} | " + " | ".join(medians) + " | " + " | ".join(spreads) + " |")


if __name__ == "__main__":
    main()
