"""The repositories alone against asyncpg alone: CPU per call of the spans page and a trace's detail.

    .venv/bin/python bench/read_repository.py --database h_reads_prof                     # this tree
    .venv/bin/python bench/read_repository.py --database h_reads_prof --base /path/to/checkout

No HTTP, no middleware: `SpanRepository.list_spans` (50 most recent spans of the last day, as a
developer and as a viewer) and `TraceRepository.get_trace` (a trace of 4 to 8 spans) on the
read-only engine (autocommit), each answer encoded with msgspec, next to
`bench/read_ceiling_raw.py`'s own functions on an asyncpg pool (the same SQL, the same JSON). The
database is one `bench/read_ceiling.py` seeded. With `--base`, each checkout runs in its own
process, in turns (`--rounds`); printed: the best loop's CPU ms per call of each case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from checkout_children import Checkouts, alternated

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent
PICK_TRACE = "SELECT trace_id FROM traces WHERE span_count BETWEEN 4 AND 8 ORDER BY start_time DESC LIMIT 1"


async def measure(database: str, calls: int, loops: int) -> dict[str, float]:
    """CPU ms per call of each case, in this process (the checkout on PYTHONPATH)."""
    import asyncpg
    import msgspec
    from bench import read_ceiling_raw as raw
    from sqlalchemy.engine import make_url

    from observatory_api.core.listing import ListFilters
    from observatory_api.core.query import TimeWindow
    from observatory_api.db.capabilities import DatabaseCapabilities
    from observatory_api.db.engine import create_engine, database_url
    from observatory_api.settings import load_settings
    from observatory_api.spans.repository import SpanRepository
    from observatory_api.traces.repository import TraceRepository

    url = make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    os.environ["DATABASE_URL"] = url
    settings = load_settings()
    engine = create_engine(settings.database, database_url(settings.database), readonly=True)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            trace_id = await connection.fetchval(PICK_TRACE)
            latest = await connection.fetchval("SELECT max(start_time) FROM spans")
        end = latest + timedelta(minutes=1)
        filters = ListFilters(window=TimeWindow(start=end - timedelta(days=1), end=end))
        spans = SpanRepository(engine, DatabaseCapabilities(backend="postgresql"))
        try:  # as the API builds it on plain PostgreSQL (deps.py); older checkouts had no choice
            traces = TraceRepository(engine, custom_plans=False)  # type: ignore[call-arg,unused-ignore]
        except TypeError:
            traces = TraceRepository(engine)
        encoder = msgspec.json.Encoder()

        async def spans_page(allow_content: bool) -> bytes:
            page = filters.page(50, None)
            return encoder.encode(await spans.list_spans(page, sort="-start_time", allow_content=allow_content))

        async def trace_detail(allow_content: bool) -> bytes:
            return encoder.encode(await traces.get_trace(trace_id, allow_content=allow_content))

        async def raw_call(function: Callable[..., Awaitable[tuple[int, Any]]], *args: Any) -> bytes:
            async with pool.acquire() as connection:
                return encoder.encode((await function(connection, *args))[1])

        cases: dict[str, Callable[[], Awaitable[bytes]]] = {
            "spans page (developer)": lambda: spans_page(True),
            "spans page (viewer)": lambda: spans_page(False),
            "spans page (raw asyncpg)": lambda: raw_call(raw._spans_page),
            "trace detail (developer)": lambda: trace_detail(True),
            "trace detail (viewer)": lambda: trace_detail(False),
            "trace detail (raw asyncpg)": lambda: raw_call(raw._trace, trace_id),
        }
        found: dict[str, float] = {}
        for name, case in cases.items():
            for _ in range(30):
                await case()
            best = float("inf")
            for _ in range(loops):
                started = time.process_time()
                for _ in range(calls):
                    await case()
                best = min(best, (time.process_time() - started) / calls)
            found[name] = 1000 * best
        return found
    finally:
        await pool.close()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="observatory_bench_read", help="seeded by bench/read_ceiling.py")
    parser.add_argument("--base", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300, help="calls per loop")
    parser.add_argument("--loops", type=int, default=3, help="loops per case and round (the best is kept)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.database, args.calls, args.loops))))
        return
    checkouts: Checkouts = {"ours": (sys.executable, ROOT)}
    if args.base:
        checkouts["base"] = (sys.executable, args.base.resolve())
    child_args = ["--database", args.database, "--calls", str(args.calls), "--loops", str(args.loops)]
    # The checkout's code, and this tree's bench/ for the raw handler's functions.
    samples = alternated(__file__, checkouts, args.rounds, child_args, also_on_path=ROOT)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; {args.rounds} rounds")
    names = list(checkouts)
    print("| case | " + " | ".join(f"{name} CPU ms/call (best of rounds)" for name in names) + " |")
    print("| --- |" + " --- |" * len(names))
    for case in samples["ours"]:
        print(f"| {case} | " + " | ".join(f"{min(samples[name][case]):.3f}" for name in names) + " |")


if __name__ == "__main__":
    main()
