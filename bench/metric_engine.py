"""The metric engine's own cost: one engine call (plan, SQL, decode, assembly, JSON) per query shape.

    .venv/bin/python bench/metric_engine.py seed                      # once: 20k traces over 7 days
    .venv/bin/python bench/metric_engine.py run --repeat 30           # this tree
    .venv/bin/python bench/metric_engine.py run --base /tmp/base/src  # before/after, alternated
    .venv/bin/python bench/metric_engine.py run --profile hourly      # cProfile of one shape

`--backend sqlite` (default, a file under `--workdir`) or `postgresql` (the database
`observatory_bench_engine`, or OBSERVATORY_BENCH_DATABASE, on OBSERVATORY_BENCH_POSTGRES_URL);
`--traces` sets the dataset size
(the demo generator: ~3.9 spans a trace, LLM inputs and outputs of realistic sizes), spread over
7 days ending at 2026-11-20. Every window ends at an unaligned "now" (7 min 13 s before the end),
so rollup queries read raw edges too, as a dashboard's do.

`run` times the engine in-process, as the controller calls it: `plan_query`, the repository's
`query`, and the JSON encoding of the answer. With `--base SRC`, a second process runs the same
queries with `SRC` (another checkout's `src/`) first on its path; the two are asked in turn,
round by round, so the drift of a shared machine falls on both. The segment cache of closed
buckets is off, and `--cached` adds a third process: this tree with it on (repeats then read only
the open edges from the database). `--shared REDIS_URL` adds two more, whose caches are shared
through Redis as every worker's is with REDIS_URL (metrics/segment_sync.py), and `--invalidations
N` publishes N late writes a second into the last closed minutes of every window meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
END = datetime(2026, 11, 20, tzinfo=UTC)
NOW = END - timedelta(minutes=7, seconds=13)
POSTGRES = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = os.environ.get("OBSERVATORY_BENCH_DATABASE", "observatory_bench_engine")
# The channel's key prefix: never a server's (`observatory`).
BENCH_PREFIX = "observatory-bench"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _week(**body: Any) -> dict[str, Any]:
    return {"from": _iso(NOW - timedelta(days=7)), "to": _iso(NOW), **body}


P = [{"id": "latency_ms", "aggregation": a} for a in ("p50", "p95", "p99")]
TOKENS = [{"id": "input_tokens"}, {"id": "output_tokens"}, {"id": "cost_usd"}]
# Every query shape of the README and docs/metrics.md, and the questions.
SHAPES: dict[str, dict[str, Any]] = {
    "tokens_cost_percentiles_7d": _week(metrics=[*TOKENS, *P]),
    "tokens_cost_by_model_7d": _week(metrics=[*TOKENS, {"id": "request_count"}], group_by=["model"]),
    "hourly_7d": _week(metrics=[{"id": "request_count"}, {"id": "cost_usd"}, P[1]], interval="hour"),
    "cost_by_provider_per_day_top2": {
        **_week(metrics=[{"id": "cost_usd", "aggregation": "sum"}, {"id": "request_count"}]),
        "from": _iso(NOW - timedelta(days=3)),
        "group_by": ["provider"],
        "interval": "day",
        "order_by": "-cost_usd_sum",
        "limit": 2,
    },
    "latency_error_rate_by_model_anthropic": _week(
        metrics=[P[0], P[1], {"id": "error_rate"}],
        group_by=["model"],
        filter={"field": "provider", "op": "eq", "value": "anthropic"},
    ),
    "by_minute_24h": {
        "metrics": [{"id": "request_count"}, {"id": "cost_usd", "aggregation": "sum"}, P[1]],
        "interval": "minute",
        "from": _iso(NOW - timedelta(hours=24)),
        "to": _iso(NOW),
    },
}
# The shapes only this tree knows (new metrics): asked when the tree under test has them.
NEW_SHAPES: dict[str, dict[str, Any]] = {
    "phoenix_7d_one_call": _week(
        metrics=[{"id": "trace_latency_ms", "aggregation": a, "alias": f"trace_{a}"} for a in ("p50", "p95", "p99")]
        + [{"id": "span_count"}, {"id": "input_tokens"}, {"id": "output_tokens"}, {"id": "cost_usd"}],
    ),
    "spans_by_kind_7d": _week(metrics=[{"id": "span_count"}], group_by=["kind"]),
}


def database_url(args: argparse.Namespace) -> str:
    if args.backend == "sqlite":
        return f"sqlite+aiosqlite:///{Path(args.workdir) / 'metric_engine.sqlite'}"
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES).set(drivername="postgresql+asyncpg", database=DATABASE)
    return url.render_as_string(hide_password=False)


async def seed(args: argparse.Namespace) -> None:
    from observatory_api.db.engine import migrated_owner_engine
    from observatory_api.demo.seed import seed_demo, stored_traces
    from observatory_api.settings import DatabaseSettings

    if args.backend == "postgresql":
        import asyncpg

        admin = await asyncpg.connect(POSTGRES)
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
    os.makedirs(args.workdir, exist_ok=True)
    engine = await migrated_owner_engine(DatabaseSettings(url=database_url(args), statement_timeout_ms=600_000))
    try:
        if await stored_traces(engine):
            print("already seeded")
            return
        started = time.perf_counter()
        result = await seed_demo(engine, traces=args.traces, seed=42, end=END, days=7)
        print(f"{result.traces:,} traces, {result.spans:,} spans in {time.perf_counter() - started:.0f} s")
        if args.backend == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- one tree's worker


async def worker(args: argparse.Namespace) -> None:
    """Read round numbers on stdin; answer each with the timings (ms) of every shape as JSON."""
    import msgspec

    from observatory_api.db.engine import create_engine
    from observatory_api.db.engine import database_url as engine_url
    from observatory_api.metrics.plan import plan_query
    from observatory_api.metrics.repository import MetricRepository
    from observatory_api.metrics.schemas import MetricQuery
    from observatory_api.settings import DatabaseSettings, QuerySettings

    settings = DatabaseSettings(url=database_url(args))
    # As the server reads: autocommit on PostgreSQL (no BEGIN/ROLLBACK round trips), query_only on SQLite.
    engine = create_engine(settings, engine_url(settings), readonly=True)
    try:  # a tree that passes what the database can do: an unmarked engine's, as before
        from observatory_api.db.capabilities import DatabaseCapabilities

        given: tuple[Any, ...] = (DatabaseCapabilities.plain(engine),)
    except ImportError:  # an older tree
        given = ()
    subscription = None
    if args.shared:  # a cache shared through Redis, as every worker has it with REDIS_URL
        from redis.asyncio import Redis

        from observatory_api.metrics.segment_cache import SegmentCache
        from observatory_api.metrics.segment_sync import SegmentSubscriber, channel_name

        cache = SegmentCache(serving=False)
        client = Redis.from_url(args.shared, socket_timeout=5)
        subscriber = SegmentSubscriber(client, channel_name(BENCH_PREFIX), f"worker-{os.getpid()}", cache)
        subscription = asyncio.create_task(subscriber.run())
        for _ in range(1000):  # up to 10 s
            if cache.serving:
                break
            await asyncio.sleep(0.01)
        assert cache.serving, "no subscription"
        repository = MetricRepository(engine, *given, segments=cache)
    elif args.cached:  # this tree's segment cache, as a worker that ingests has it
        from observatory_api.metrics.segment_cache import SegmentCache

        repository = MetricRepository(engine, *given, segments=SegmentCache())
    else:
        repository = MetricRepository(engine, *given)
    limits = QuerySettings(max_range_days=400)
    from observatory_api.metrics.catalogue import METRICS

    shapes = dict(SHAPES)
    if "span_count" in METRICS:
        shapes.update(NEW_SHAPES)

    async def once(body: dict[str, Any]) -> tuple[float, float]:
        """Wall and CPU (this process: not the database's) milliseconds of one call."""
        started, cpu = time.perf_counter(), time.process_time()
        plan = plan_query(msgspec.convert(body, MetricQuery), limits, allow_content=True, now=END)
        msgspec.json.encode(await repository.query(plan))
        return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000

    for body in shapes.values():  # warm: connections, statement caches, imports
        await once(body)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.thread_time)  # this thread's CPU: not the database's waits
        profiler.enable()
        for _ in range(args.repeat):
            await once(shapes[args.profile])
        profiler.disable()
        pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
        await engine.dispose()
        return
    print(json.dumps({"ready": list(shapes)}), flush=True)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():  # without blocking the loop: the subscription keeps listening
        timings = {name: [await once(body) for _ in range(args.per_round)] for name, body in shapes.items()}
        print(json.dumps(timings), flush=True)
    if subscription is not None:
        subscription.cancel()
    await engine.dispose()


# --------------------------------------------------------------------------- the driver


def start_worker(args: argparse.Namespace, src: Path, *, cached: bool, shared: bool = False) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--backend", args.backend, "--workdir", args.workdir]
    command += ["worker", "--per-round", str(args.per_round)] + (["--cached"] if cached else [])
    command += ["--shared", args.shared] if shared else []
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run(args: argparse.Namespace) -> None:
    if args.profile:
        asyncio.run(worker(args))
        return
    trees = {"after": (ROOT / "src", False)}
    if args.base:
        trees = {"before": (Path(args.base), False), **trees}
    if args.cached:
        trees["after, cached"] = (ROOT / "src", True)
    shared = {"shared A", "shared B"} if args.shared else set()
    for name in sorted(shared):
        trees[name] = (ROOT / "src", True)
    workers = {
        name: start_worker(args, src, cached=cached, shared=name in shared) for name, (src, cached) in trees.items()
    }
    publishing = threading.Event()
    if args.shared and args.invalidations:
        threading.Thread(target=_late_writes, args=(args, publishing), daemon=True).start()
    shapes = {name: json.loads(w.stdout.readline())["ready"] for name, w in workers.items()}  # type: ignore[union-attr]
    timings: dict[str, dict[str, list[list[float]]]] = {name: {} for name in trees}
    for _round in range(args.repeat):
        for name, process in workers.items():  # in turn: drift falls on both
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write("go\n")
            process.stdin.flush()
            for shape, found in json.loads(process.stdout.readline()).items():
                timings[name].setdefault(shape, []).extend(found)
    publishing.set()
    for process in workers.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)
    late = f"; {args.invalidations} late writes/s published" if args.shared else ""
    print(
        f"# {args.backend}, {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at end; "
        f"{args.repeat} rounds x {args.per_round}; engine call + JSON, ms (CPU: the engine's process only){late}"
    )
    names = list(trees)
    print("| shape | " + " | ".join(f"{n} p50 | {n} p95 | {n} CPU p50" for n in names) + " |")
    print("| --- |" + " --- | --- | --- |" * len(names))
    for shape in dict.fromkeys(s for n in names for s in shapes[n]):
        cells = []
        for name in names:
            found = timings[name].get(shape, [])
            if not found:
                cells += ["-", "-", "-"]
                continue
            wall = sorted(w for w, _ in found)
            cpu = statistics.median(c for _, c in found)
            cells += [f"{statistics.median(wall):.1f}", f"{wall[int(0.95 * (len(wall) - 1))]:.1f}", f"{cpu:.1f}"]
        print(f"| {shape} | " + " | ".join(cells) + " |")


def _late_writes(args: argparse.Namespace, stop: threading.Event) -> None:
    """What ingest publishes for late spans of the last closed minutes of every window (a span
    that started 1-2 minutes before "now"), `--invalidations` times a second, until `stop`."""
    import redis

    from observatory_api.metrics.segment_sync import channel_name, encode

    client = redis.Redis.from_url(args.shared, socket_timeout=5)
    message = encode("bench-writer", [(NOW - timedelta(minutes=2), NOW - timedelta(minutes=1))])
    while not stop.wait(1 / args.invalidations):
        client.publish(channel_name(BENCH_PREFIX), message)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workdir", default="/tmp/observatory-metric-engine")
    commands = parser.add_subparsers(dest="command", required=True)
    seed_parser = commands.add_parser("seed")
    seed_parser.add_argument("--traces", type=int, default=20_000)
    for name in ("run", "worker"):
        sub = commands.add_parser(name)
        sub.add_argument("--repeat", type=int, default=20, help="rounds (profile: calls)")
        sub.add_argument("--per-round", type=int, default=3)
        sub.add_argument("--base", help="another checkout's src/: measured in turn with this tree")
        sub.add_argument("--profile", help="a shape name: cProfile `--repeat` calls of it instead")
        sub.add_argument("--cached", action="store_true", help="also this tree with the segment cache on")
        sub.add_argument("--shared", metavar="REDIS_URL", help="also two workers sharing their cache through Redis")
        sub.add_argument("--invalidations", type=float, default=0, help="with --shared: late writes published a second")
    args = parser.parse_args()
    if args.command == "seed":
        asyncio.run(seed(args))
    elif args.command == "worker":
        asyncio.run(worker(args))
    else:
        run(args)


if __name__ == "__main__":
    main()
