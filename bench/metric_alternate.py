"""The issue's three target queries on the `metrics_bench.py` database, two trees asked in turn.

    # base = a worktree of main (its src/), this tree = the change; both ask the same database:
    OBSERVATORY_BENCH_DATABASE=<db> PYTHONPATH=src .venv/bin/python bench/metric_alternate.py \\
        [--backend timescaledb] --base <base>/src --rounds 6 --repeat 10 [--unaligned]

Each tree runs in its own process (its `src/` first on the path), with the engine in-process as
`metrics_bench.py run` has it (no segment cache); round by round each process answers every
query `--repeat` times, so a shared machine's drift falls on both. Every answer is encoded as the
API sends it and its SHA-256 compared across the trees, round by round. A parallel plan sums
floats in an order that varies from run to run (a cost's last digit): for a byte-for-byte check,
turn parallel workers off for the database (`ALTER DATABASE <db> SET
max_parallel_workers_per_gather = 0`, a session's default, then `RESET`). `--database DB` adds
this tree on another database with the same rows (a copy of it compacted by VACUUM FULL, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import metrics_bench

ROOT = Path(__file__).resolve().parent.parent


async def worker(unaligned: bool, repeat: int) -> None:
    import msgspec

    from observatory_api.metrics.plan import plan_query
    from observatory_api.metrics.repository import MetricRepository
    from observatory_api.metrics.schemas import MetricQuery
    from observatory_api.settings import QuerySettings

    engine, capabilities = await metrics_bench.prepared_engine(metrics_bench.bench_settings())
    repository = MetricRepository(engine, capabilities)
    end = metrics_bench.END - timedelta(minutes=7, seconds=13.25) if unaligned else metrics_bench.END
    plans = {
        name: plan_query(
            msgspec.convert({**body, "source": "rollup"}, MetricQuery), QuerySettings(), allow_content=True
        )
        for name, body in metrics_bench.target_queries(end).items()
    }
    for plan in plans.values():  # warm: connections, compiled statements
        await repository.query(plan)
    gc.freeze()  # as the server's lifespan does once started
    print(json.dumps({"ready": list(plans)}), flush=True)
    for _ in sys.stdin:
        found = {}
        for name, plan in plans.items():
            times, digest = [], ""
            for _ in range(repeat):
                started, cpu = time.perf_counter(), time.process_time()
                body = msgspec.json.encode(await repository.query(plan))
                times.append(((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000))
                digest = hashlib.sha256(body).hexdigest()
            found[name] = {"times": times, "sha256": digest}
        print(json.dumps(found), flush=True)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(metrics_bench.SERVERS), default="postgresql")
    parser.add_argument("--base", help="another checkout's src/, asked in turn with this tree")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=10, help="calls of each query per round")
    parser.add_argument("--unaligned", action="store_true", help="windows end 7m13s before a bucket boundary")
    parser.add_argument("--database", help="also this tree on another database (a copy after VACUUM FULL, ...)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    metrics_bench.ADMIN_URL = metrics_bench.SERVERS[args.backend]
    if args.worker:
        asyncio.run(worker(args.unaligned, args.repeat))
        return
    trees = {"after": ROOT / "src"}
    if args.base:
        trees = {"before": Path(args.base), **trees}
    databases = {tree: metrics_bench.DATABASE for tree in trees}
    if args.database:
        trees[f"after, {args.database}"] = ROOT / "src"
        databases[f"after, {args.database}"] = args.database
    command = [sys.executable, __file__, "--backend", args.backend, "--repeat", str(args.repeat), "--worker"]
    command += ["--unaligned"] if args.unaligned else []
    workers = {
        name: subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": str(src)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, src in trees.items()
    }
    names = {tree: json.loads(w.stdout.readline())["ready"] for tree, w in workers.items()}  # type: ignore[union-attr]
    loads = [os.getloadavg()[0]]
    times: dict[str, dict[str, list[tuple[float, float]]]] = {tree: {} for tree in trees}
    different: list[str] = []
    for _ in range(args.rounds):
        digests: dict[str, set[str]] = {}
        for tree, process in workers.items():
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write("go\n")
            process.stdin.flush()
            for query, found in json.loads(process.stdout.readline()).items():
                times[tree].setdefault(query, []).extend(found["times"])
                digests.setdefault(query, set()).add(found["sha256"])
        different += [query for query, seen in digests.items() if len(seen) > 1]
        loads.append(os.getloadavg()[0])
    for process in workers.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)
    aligned = "unaligned" if args.unaligned else "aligned"
    same = f"answers differed: {sorted(set(different))}" if different else "answers identical (SHA-256)"
    print(
        f"# {args.backend}, {metrics_bench.DATABASE}, windows {aligned}; {platform.node()}, {os.cpu_count()} cores; "
        f"load {min(loads):.1f}-{max(loads):.1f}; {args.rounds} rounds x {args.repeat}; {same}"
    )
    print("| query | " + " | ".join(f"{t} p50 | {t} p95 | {t} CPU p50" for t in trees) + " |")
    print("| --- |" + " --- | --- | --- |" * len(trees))
    for query in names["after"]:
        cells = []
        for tree in trees:
            found = times[tree][query]
            wall = sorted(w for w, _ in found)
            p95 = wall[min(len(wall) - 1, -(-95 * len(wall) // 100) - 1)]
            cpu = statistics.median(c for _, c in found)
            cells += [f"{statistics.median(wall):.1f}", f"{p95:.1f}", f"{cpu:.1f}"]
        print(f"| {query} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
