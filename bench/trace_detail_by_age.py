"""Trace detail by the age of the trace: recent traces (on TimescaleDB, in chunks not yet
compressed, as a live system's last days are) and older ones (compressed), TimescaleDB and plain
PostgreSQL alternated round by round, in-process `TraceRepository.get_trace` as the server wires it.

    OBSERVATORY_BENCH_DATABASE=obs_10m .venv/bin/python bench/trace_detail_by_age.py --since 2026-11-13T06:00:00Z

Reads the datasets of `bench/metrics_bench.py` (the same database on both servers; their data end
at 2026-11-20, so its `seed` compresses every chunk: decompress the recent ones on TimescaleDB
first, e.g. `SELECT decompress_chunk(c) FROM show_chunks('spans', newer_than => '2026-11-13') c`,
the same for `logs`). `--plans generic` keeps generic plans on TimescaleDB too (the server plans
the by-trace lookups for their values there: `db.custom_plans`). Prints p50 / p95 ms per round.

On TimescaleDB the repository reads a trace from its chunk (`db/trace_chunks.py`) when the checkout
has it, as deps.py wires it.

`--base ../main-checkout` measures this tree and that checkout instead, each in a child process of
its own, alternated round by round (bench/checkout_children.py): a child reads every sampled trace
twice on each backend (a fresh connection pool: "first" pass, then "second") and the table gives
the p50 ms of each pass, and each checkout's TimescaleDB / PostgreSQL ratio of the p50s; then every
sampled trace's answer, with and without content, is hashed: one digest per backend means the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

import metrics_bench
import msgspec
from checkout_children import alternated, with_base
from sqlalchemy import text

from observatory_api.traces.repository import TraceRepository

try:  # the trace's chunk read directly on TimescaleDB (db/trace_chunks.py); a --base checkout may predate it
    from observatory_api.db.trace_chunks import ChunkCatalogue
except ImportError:
    ChunkCatalogue = None

BACKENDS = ("timescaledb", "postgresql")
SAMPLE = (
    "SELECT trace_id FROM traces TABLESAMPLE SYSTEM (5) REPEATABLE (3) WHERE start_time {side} :since "
    "ORDER BY trace_id LIMIT :n"
)


async def _side(backend: str, since: datetime, count: int, plans: str) -> tuple[TraceRepository, dict[str, list[str]]]:
    metrics_bench.ADMIN_URL = metrics_bench.SERVERS[backend]
    engine, capabilities = await metrics_bench.prepared_engine(metrics_bench.bench_settings())
    groups = {"recent": (">=", since), "older": ("<", since - timedelta(hours=12))}
    ids: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for group, (side, bound) in groups.items():
            rows = await conn.execute(text(SAMPLE.format(side=side)), {"since": bound, "n": count})
            ids[group] = list(rows.scalars())
    custom = capabilities.timescaledb and plans == "server"
    if ChunkCatalogue is not None and capabilities.timescaledb:  # as deps.py wires it
        return TraceRepository(engine, custom_plans=custom, chunks=ChunkCatalogue()), ids
    return TraceRepository(engine, custom_plans=custom), ids


async def child(since: datetime, count: int) -> None:
    """One checkout's figures as JSON on the last line: p50 ms by group, backend and pass. Each
    sampled trace is read on one backend then the other (the order flips trace by trace), so a
    change of the machine's load falls on both alike."""
    sides = {backend: await _side(backend, since, count, "server") for backend in BACKENDS}
    figures: dict[str, float] = {}
    for group in ("recent", "older"):
        for pass_name in ("first", "second"):
            times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
            for number, trace_id in enumerate(sides[BACKENDS[0]][1][group]):
                for backend in BACKENDS if number % 2 == 0 else BACKENDS[::-1]:
                    started = time.perf_counter()
                    await sides[backend][0].get_trace(trace_id, allow_content=True)
                    times[backend].append((time.perf_counter() - started) * 1000)
            for backend, spent in times.items():
                figures[f"{group} {backend} {pass_name}"] = statistics.median(spent)
    for backend, (repository, ids) in sides.items():
        answers = hashlib.sha256()
        for trace_id in sorted(ids["recent"] + ids["older"]):
            for allow_content in (True, False):
                answers.update(msgspec.json.encode(await repository.get_trace(trace_id, allow_content=allow_content)))
        figures[f"answers {backend}"] = int(answers.hexdigest()[:12], 16)  # exact as a JSON number
    print(json.dumps(figures))


def compare(since: datetime, count: int, rounds: int, base: Path) -> None:
    checkouts = with_base(Path(__file__).resolve().parent.parent, base)
    samples = alternated(__file__, checkouts, rounds, ["--since", since.isoformat(), "--traces", str(count)])
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# {count} traces a group, {rounds} rounds alternated; load average {load} at the end; p50 ms")
    print("| traces | pass | checkout | TimescaleDB | PostgreSQL | ratio | median ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for backend in BACKENDS:
        digests = {name: set(cases[f"answers {backend}"]) for name, cases in samples.items()}
        print(f"# answers on {backend}, every sampled trace with and without content: {digests}")
    for group in ("recent", "older"):
        for pass_name in ("first", "second"):
            for name, cases in samples.items():
                ts, pg = (cases[f"{group} {backend} {pass_name}"] for backend in BACKENDS)
                cells = [
                    ", ".join(f"{value:.2f}" for value in ts),
                    ", ".join(f"{value:.2f}" for value in pg),
                    ", ".join(f"{a / b:.2f}" for a, b in zip(ts, pg, strict=True)),
                    f"{statistics.median(a / b for a, b in zip(ts, pg, strict=True)):.2f}",
                ]
                print(f"| {group} | {pass_name} | {name} | " + " | ".join(cells) + " |")


async def main(since: datetime, count: int, rounds: int, plans: str) -> None:
    sides = {backend: await _side(backend, since, count, plans) for backend in BACKENDS}
    figures: dict[tuple[str, str], list[str]] = {}
    for round_number in range(rounds):
        for backend in BACKENDS if round_number % 2 == 0 else BACKENDS[::-1]:
            repository, ids = sides[backend]
            for group, trace_ids in ids.items():
                times = []
                for trace_id in trace_ids:
                    started = time.perf_counter()
                    await repository.get_trace(trace_id, allow_content=True)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                p95 = times[max(0, round(0.95 * len(times)) - 1)]
                figures.setdefault((group, backend), []).append(f"{statistics.median(times):.1f} / {p95:.1f}")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# {count} traces a group, {rounds} rounds, plans {plans}; load average {load} at the end; p50 / p95 ms")
    print("| traces | backend | " + " | ".join(f"round {n + 1}" for n in range(rounds)) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in range(rounds)) + " |")
    for (group, backend), cells in sorted(figures.items()):
        print(f"| {group} | {backend} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", type=datetime.fromisoformat, required=True, help="recent traces start here")
    parser.add_argument("--traces", type=int, default=100, help="traces sampled a group")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--plans", choices=("server", "generic"), default="server")
    parser.add_argument("--base", type=Path, help="a checkout to compare with, alternated")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.since, args.traces))
    elif args.base is not None:
        compare(args.since, args.traces, args.rounds, args.base)
    else:
        asyncio.run(main(args.since, args.traces, args.rounds, args.plans))
