"""Trace detail's by-trace lookups by execution number on one connection: cached prepared
statements (PostgreSQL builds a generic plan at the sixth execution) against statements planned
for their values every time (`db.custom_plans`), alternated in one run.

    .venv/bin/python bench/trace_plans.py --url postgresql://postgres@127.0.0.1:5433/htsdb_bench \
        --url postgresql://postgres@127.0.0.1:5432/htsdb_bench --rounds 6 --runs 12

For each round, each database and each mode (`cached`: `conn.execute`, what trace detail did
before; `custom`: `execute_custom_planned`), a new connection runs `--runs` traces' spans and logs
lookups in a row (the statements `TraceRepository.get_trace` sends, different traces each time),
timing each statement client-side. Then `TraceRepository.get_trace` itself over `--traces` traces,
alternated by database, on a warm pool. Prints medians and maxima (ms); nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections import defaultdict

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from observatory_api.db import tables
from observatory_api.db.custom_plans import execute_custom_planned
from observatory_api.db.engine import create_engine
from observatory_api.settings import DatabaseSettings
from observatory_api.traces.repository import _LOGS, _SPANS, SUMMARY_COLUMNS, TraceRepository, to_summary

MODES = ("cached", "custom")


async def _traces(url: str, count: int) -> list[str]:
    engine = create_engine(DatabaseSettings(url=url), make_url(url).set(drivername="postgresql+asyncpg"), readonly=True)
    try:
        async with engine.connect() as conn:
            found = await conn.scalars(select(tables.traces.c.trace_id).order_by(text("random()")).limit(count))
            return list(found.all())
    finally:
        await engine.dispose()


async def _lookups(url: str, mode: str, trace_ids: list[str]) -> list[tuple[float, float]]:
    """(spans ms, logs ms) of each trace, in execution order, on one new connection."""
    engine = create_engine(
        DatabaseSettings(url=url),
        make_url(url).set(drivername="postgresql+asyncpg"),
        readonly=True,
        pool_size=1,
        max_overflow=0,
    )
    timings = []
    try:
        async with engine.connect() as conn:
            for trace_id in trace_ids:
                row = (await conn.execute(select(*SUMMARY_COLUMNS).where(tables.traces.c.trace_id == trace_id))).first()
                summary = to_summary(row)
                spent = []
                for rows in (_SPANS, _LOGS):
                    statement, values = rows.of(
                        summary.trace_id, summary.start_time, summary.end_time, allow_content=True
                    )
                    started = time.perf_counter()
                    if mode == "cached":
                        (await conn.execute(statement, values)).all()
                    else:
                        (await execute_custom_planned(conn, statement, values)).all()
                    spent.append((time.perf_counter() - started) * 1000)
                timings.append((spent[0], spent[1]))
    finally:
        await engine.dispose()
    return timings


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "-"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--traces", type=int, default=200)
    args = parser.parse_args()
    pools = {url: await _traces(url, args.rounds * args.runs * len(MODES) + args.traces) for url in args.url}
    # (url, mode, "6th" | "others", statement) -> ms
    found: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    by_execution: dict[tuple[str, str, str, int], list[float]] = defaultdict(list)
    for round_ in range(args.rounds):
        for url in args.url:
            for mode in MODES if round_ % 2 == 0 else reversed(MODES):
                start = (round_ * len(MODES) + MODES.index(mode)) * args.runs
                timings = await _lookups(url, mode, pools[url][start : start + args.runs])
                for index, (spans_ms, logs_ms) in enumerate(timings):
                    by_execution[(url, mode, "spans", index)].append(spans_ms)
                    by_execution[(url, mode, "logs", index)].append(logs_ms)
                    which = "6th" if index == 5 else "others"
                    found[(url, mode, which, "spans")].append(spans_ms)
                    found[(url, mode, which, "logs")].append(logs_ms)
    print(f"load average {os.getloadavg()[0]:.1f}; rounds {args.rounds}, runs {args.runs}")
    for url in args.url:
        for statement in ("spans", "logs"):
            cells = [_summary(found[(url, mode, which, statement)]) for mode in MODES for which in ("6th", "others")]
            print(
                f"{make_url(url).port} {statement}: cached 6th {cells[0]} others {cells[1]} | "
                f"custom 6th {cells[2]} others {cells[3]}"
            )
    for url in args.url:
        for mode in MODES:
            for statement in ("spans", "logs"):
                medians = [statistics.median(by_execution[(url, mode, statement, i)]) for i in range(args.runs)]
                print(f"{make_url(url).port} {mode} {statement} by execution: " + " ".join(f"{m:.1f}" for m in medians))
    # get_trace in-process (now with custom plans), databases alternated trace by trace.
    engines = {
        url: create_engine(DatabaseSettings(url=url), make_url(url).set(drivername="postgresql+asyncpg"), readonly=True)
        for url in args.url
    }
    spent: dict[str, list[float]] = defaultdict(list)
    try:
        picks = {url: pools[url][-args.traces :] for url in args.url}
        for index in range(args.traces):
            for url in random.sample(args.url, len(args.url)):
                repository = TraceRepository(engines[url])
                started = time.perf_counter()
                await repository.get_trace(picks[url][index], allow_content=True)
                spent[url].append((time.perf_counter() - started) * 1000)
    finally:
        for engine in engines.values():
            await engine.dispose()
    print(f"get_trace over {args.traces} traces, load average {os.getloadavg()[0]:.1f}")
    for url in args.url:
        values = sorted(spent[url])
        p95 = values[int(len(values) * 0.95)]
        print(f"{make_url(url).port}: p50 {statistics.median(values):.2f} p95 {p95:.2f} max {values[-1]:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
