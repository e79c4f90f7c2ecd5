"""Metric queries at scale: raw spans against the rollups, on PostgreSQL, side by side in one run.

    # 1. load (once; ~10 million spans over 30 days, through the TelemetryWriter, logs progress):
    .venv/bin/python bench/metrics_bench.py seed --spans 10000000 --log bench/seed_metrics.log
    # 1'. or, in minutes instead of hours: one million through the writer, then server-side copies
    #     of those traces (new ids, whole days shifted; bench/grow_dataset.py says exactly what a
    #     copy is: the grown dataset repeats the base's trace shapes), the metric tables brought up
    #     to date from the spans, and every consistency check:
    .venv/bin/python bench/metrics_bench.py seed --spans 1000000 [--skip-rollups]
    .venv/bin/python bench/metrics_bench.py grow --to 10000000
    # 2. measure the three target queries on both paths:
    .venv/bin/python bench/metrics_bench.py run --repeat 20
    # 3. trace detail and the listings:
    .venv/bin/python bench/metrics_bench.py traces --repeat 200

`--backend timescaledb` (before the command) does the same on OBSERVATORY_BENCH_TIMESCALEDB_URL
(default postgres@127.0.0.1:5433, ../shared/timescaledb/start.sh); there `seed` ends by running
the refresh and compression policies' jobs once, as the server's scheduler would, and `run` reads
the continuous aggregates where plain PostgreSQL reads the rollup tables. `grow` rebuilds the
rollup tables from the spans on plain PostgreSQL (`rebuild-rollups`), and on TimescaleDB
decompresses the chunks, copies, then runs the same jobs once.

The database is `observatory_bench_metrics` (OBSERVATORY_BENCH_DATABASE) on
OBSERVATORY_BENCH_POSTGRES_URL (default postgres@127.0.0.1) and is kept afterwards. `seed` is
idempotent (the writer skips stored spans), so an interrupted load can be re-run. Figures go to
bench/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import platform
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grow_dataset
import msgspec
from sqlalchemy import and_, case, delete, func, insert, select, text
from sqlalchemy.engine import make_url

from observatory_api.core.listing import ListPage
from observatory_api.core.query import TimeWindow
from observatory_api.core.records import SpanRecord
from observatory_api.db.bulk_insert import upsert_via_staging
from observatory_api.db.capabilities import DatabaseCapabilities, detect_capabilities
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.metric_sql import time_bucket
from observatory_api.db.migrate import upgrade
from observatory_api.db.tables import spans
from observatory_api.demo.seed import seed_demo
from observatory_api.logs.repository import LogFilters, LogRepository
from observatory_api.metrics.continuous_aggregates import AGGREGATE_VIEWS
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.rollup_tables import (
    MEASURES,
    ROLLUP_DIMENSIONS,
    ROLLUP_TABLES,
    ROLLUPS,
    metric_rollup_day_overall,
    metric_rollup_hour_overall,
    metric_rollup_minute_overall,
)
from observatory_api.metrics.rollups import additive_updates, dims_key, rollup_rows
from observatory_api.metrics.schemas import MetricQuery
from observatory_api.settings import DatabaseSettings, QuerySettings
from observatory_api.spans.repository import SpanRepository
from observatory_api.traces.repository import TraceRepository

SERVERS = {
    "postgresql": os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    "timescaledb": os.environ.get("OBSERVATORY_BENCH_TIMESCALEDB_URL", "postgresql://postgres@127.0.0.1:5433/postgres"),
}
ADMIN_URL = SERVERS["postgresql"]  # set by --backend
DATABASE = os.environ.get("OBSERVATORY_BENCH_DATABASE", "observatory_bench_metrics")
END = datetime(2026, 11, 20, tzinfo=UTC)
SPANS_PER_TRACE = 3.88  # the generator's average


def bench_settings() -> DatabaseSettings:
    url = make_url(ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)
    # The benchmark's own statements may run longer than the API's default timeout.
    return DatabaseSettings(url=url, statement_timeout_ms=600_000)


async def seed(spans: int, log_path: str, seed_value: int = 42, *, skip_rollups: bool = False, days: int = 30) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    settings = bench_settings()
    engine = create_engine(settings, database_url(settings))
    traces = round(spans / SPANS_PER_TRACE)
    started = last_time = time.perf_counter()
    last_done = 0
    with open(log_path, "a", buffering=1) as log:  # noqa: ASYNC230 - a progress log, not request I/O
        log.write(
            f"{datetime.now(UTC).isoformat()} seed {seed_value}: {traces:,} traces (~{spans:,} spans) into {DATABASE}\n"
        )

        def progress(done: int, total: int) -> None:
            nonlocal last_time, last_done
            if done - last_done >= 25_000 or done == total:
                now = time.perf_counter()
                rate = (done - last_done) * SPANS_PER_TRACE / (now - last_time)
                log.write(f"{done:,}/{total:,} traces, {now - started:,.0f} s, ~{rate:,.0f} spans/s recently\n")
                last_time, last_done = now, done

        try:
            await upgrade(engine, settings)
            capabilities = await detect_capabilities(engine, continuous_aggregates=AGGREGATE_VIEWS)
            if skip_rollups:  # the writer leaves the rollups alone, as with TimescaleDB; rebuild-rollups fills them
                capabilities = replace(capabilities, continuous_aggregates=True)
            result = await seed_demo(
                engine, traces=traces, seed=seed_value, end=END, days=days, progress=progress, capabilities=capabilities
            )
            elapsed = time.perf_counter() - started
            # The server here runs without autovacuum: give the planner statistics and the
            # visibility map once, as autovacuum would in production.
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await run_policies(conn, log)
                await conn.exec_driver_sql("VACUUM ANALYZE")
            log.write(
                f"done: {result.spans:,} spans, {result.logs:,} logs in {elapsed:,.0f} s "
                f"= {result.spans / elapsed:,.0f} spans/s ({platform.node()}, {os.cpu_count()} cores)\n"
            )
        finally:
            await engine.dispose()


async def run_policies(conn: Any, log: Any) -> None:
    """On TimescaleDB, run the continuous aggregates' refresh and the compression policies once, as
    the scheduler would after the load (in autocommit: TimescaleDB refuses them in a transaction).

    The scheduler runs the same jobs on its own (the minute aggregates every minute): they are
    paused first and any run in progress waited for, or `run_job` fails with "concurrent refresh".
    They are scheduled again afterwards. The refreshes run first, on uncompressed chunks, and
    without JIT: the aggregates' ~330 expressions were JIT-compiled for minutes per refresh batch
    over compressed chunks (20,000 spans: no end within 300 s with JIT, 0.6 s without)."""
    installed = (await conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()
    if installed is None:
        return
    jobs = (await conn.exec_driver_sql(grow_dataset.POLICY_JOBS)).all()
    try:
        await conn.exec_driver_sql("SET jit = off")
        await conn.exec_driver_sql("SET statement_timeout = 0")
        for job_id, _ in jobs:
            await conn.exec_driver_sql(f"SELECT alter_job({int(job_id)}, scheduled => false)")
        for _ in range(900):  # at most 30 minutes
            if not (await conn.exec_driver_sql(grow_dataset.POLICY_RUNS)).scalar_one():
                break
            await asyncio.sleep(2)
        else:
            raise RuntimeError("the scheduler's policy runs did not end within 30 minutes")
        for job_id, proc_name in jobs:
            started = time.perf_counter()
            await conn.exec_driver_sql(f"CALL run_job({int(job_id)})")
            log.write(f"{proc_name} job {job_id}: {time.perf_counter() - started:,.1f} s\n")
    finally:
        for job_id, _ in jobs:
            await conn.exec_driver_sql(f"SELECT alter_job({int(job_id)}, scheduled => true)")


async def prepared_engine(settings: DatabaseSettings) -> tuple[Any, DatabaseCapabilities]:
    """The engine, and what the server's lifespan would find the database can do (TimescaleDB, aggregates).

    Read-only, as the server's read engine: autocommit, no BEGIN and ROLLBACK round trips."""
    engine = create_engine(settings, database_url(settings), readonly=True)
    return engine, await detect_capabilities(engine, continuous_aggregates=AGGREGATE_VIEWS)


# The three target queries of the issue, over windows that end at the dataset's end.
def target_queries(end: datetime) -> dict[str, dict]:
    return {
        "30d cost + requests by model per day": {
            "metrics": [{"id": "cost_usd", "aggregation": "sum"}, {"id": "request_count"}],
            "group_by": ["model"],
            "interval": "day",
            "from": end - timedelta(days=30),
            "to": end,
        },
        "7d latency p50/p95/p99 by model": {
            "metrics": [{"id": "latency_ms", "aggregation": p} for p in ("p50", "p95", "p99")],
            "group_by": ["model"],
            "from": end - timedelta(days=7),
            "to": end,
        },
        "24h by minute (requests, cost, p95 latency)": {
            "metrics": [
                {"id": "request_count"},
                {"id": "cost_usd", "aggregation": "sum"},
                {"id": "latency_ms", "aggregation": "p95"},
            ],
            "interval": "minute",
            "from": end - timedelta(hours=24),
            "to": end,
        },
    }


async def measure(repeat: int, raw_repeat: int, unaligned: bool) -> None:
    settings = bench_settings()
    engine, capabilities = await prepared_engine(settings)
    repository = MetricRepository(engine, capabilities)
    limits = QuerySettings()
    async with engine.connect() as conn:
        spans = (await conn.execute(text("SELECT count(*) FROM spans"))).scalar_one()
        span_range = (await conn.execute(text("SELECT min(start_time), max(start_time) FROM spans"))).one()
    # A dashboard's "now" is not on a bucket boundary: the unaligned run shifts every window.
    end = END - timedelta(minutes=7, seconds=13.25) if unaligned else END
    print(f"# {spans:,} spans from {span_range[0]} to {span_range[1]}; {platform.node()}, {os.cpu_count()} cores")
    print(f"# windows end at {end.isoformat()}; timings are the engine call (plan, SQL, assembly), in ms")
    print("| query | path | runs | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    ratios = []
    for name, body in target_queries(end).items():
        figures = {}
        for source, runs in (("rollup", repeat), ("raw", raw_repeat)):
            plan = plan_query(msgspec.convert({**body, "source": source}, MetricQuery), limits, allow_content=True)
            await repository.query(plan)  # warm: caches, compiled statements
            gc.freeze()  # as the server's lifespan does once started
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                result = await repository.query(plan)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p50 = statistics.median(times)
            p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
            figures[source] = p95
            print(f"| {name} | {result.source} | {runs} | {p50:,.0f} | {p95:,.0f} | {times[-1]:,.0f} |")
        ratios.append((name, figures["raw"] / figures["rollup"]))
    for name, ratio in ratios:
        print(f"# {name}: raw p95 / rollup p95 = {ratio:,.1f}x")
    await engine.dispose()


async def measure_traces(repeat: int) -> None:
    """Trace detail of `repeat` traces spread over the 30 days (old ones on compressed chunks on
    TimescaleDB), and the first page of the trace, span and log listings over 1 and 7 days."""
    settings = bench_settings()
    engine, capabilities = await prepared_engine(settings)
    async with engine.connect() as conn:
        ids = (
            await conn.execute(
                text("SELECT trace_id FROM traces TABLESAMPLE SYSTEM (5) REPEATABLE (1) ORDER BY trace_id LIMIT :n"),
                {"n": repeat},
            )
        ).scalars()
        trace_ids = list(ids)
    traces = TraceRepository(engine, custom_plans=capabilities.timescaledb)  # as deps.py wires it
    spans_repository, logs_repository = SpanRepository(engine, capabilities), LogRepository(engine, capabilities)

    async def detail(i: int) -> None:
        await traces.get_trace(trace_ids[i % len(trace_ids)], allow_content=True)

    def listing(days: int) -> ListPage:
        window = TimeWindow(start=END - timedelta(days=days), end=END)
        return ListPage(window=window, node=None, fingerprint={}, limit=50, cursor=None)

    async def list_traces(days: int) -> None:
        await traces.list_traces(listing(days), sort="-start_time", allow_content=True)

    async def list_spans(days: int) -> None:
        await spans_repository.list_spans(listing(days), sort="-start_time", allow_content=True)

    async def list_logs(days: int) -> None:
        window = TimeWindow(start=END - timedelta(days=days), end=END)
        await logs_repository.list_logs(window=window, filters=LogFilters(), limit=50, cursor=None, allow_content=True)

    print(f"# {len(trace_ids)} traces; {platform.node()}, {os.cpu_count()} cores; in-process engine calls, ms")
    print("| call | runs | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    cases: list[tuple[str, Any]] = [("trace detail", detail)]
    for days in (1, 7):
        cases += [
            (f"traces page, {days} d", lambda i, d=days: list_traces(d)),
            (f"spans page, {days} d", lambda i, d=days: list_spans(d)),
            (f"logs page, {days} d", lambda i, d=days: list_logs(d)),
        ]
    for name, call in cases:
        await call(0)  # warm
        times = []
        for i in range(repeat):
            started = time.perf_counter()
            await call(i)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
        print(f"| {name} | {repeat} | {statistics.median(times):,.1f} | {p95:,.1f} | {times[-1]:,.1f} |")
    await engine.dispose()


async def rebuild_rollups(log_path: str) -> None:
    """Rebuild every rollup table from the stored spans, with the writer's own aggregation code.

    For a load seeded with --skip-rollups: the spans are read in time order and aggregated per
    minute by `metrics.rollups.rollup_rows` (what the writer adds, span for span), then the hour,
    day and overall-minute rollups are derived from the minute rollup (exact: counts and sums
    add, min and max nest, histogram bins add).
    """
    settings = bench_settings()
    engine = create_engine(settings, database_url(settings))
    minute = ROLLUP_TABLES["minute"]
    rollup = next(r for r in ROLLUPS if r.table is minute)
    # What a span contributes to the rollups: its start, the dimensions and the measures it stores.
    wanted = {"start_time", *ROLLUP_DIMENSIONS.values(), *MEASURES}
    fields = [column for column in spans.c if column.name in wanted]
    started = time.perf_counter()
    with open(log_path, "a", buffering=1) as log:  # noqa: ASYNC230 - a progress log, not request I/O
        async with engine.begin() as conn:
            for r in ROLLUPS:
                await conn.execute(delete(r.table))
        done = 0
        async with engine.connect() as reader:
            stream = await reader.stream(
                select(*fields).order_by(spans.c.start_time).execution_options(yield_per=50_000)
            )
            async for partition in stream.partitions():
                records = [
                    SpanRecord(trace_id="", span_id="", name="", end_time=row.start_time, **row._asdict())
                    for row in partition
                ]
                async with engine.begin() as conn:  # a minute split across partitions is added up
                    await upsert_via_staging(
                        conn,
                        minute,
                        rollup_rows(records, rollup),
                        key=("bucket", "dims_key"),
                        updates=lambda new: additive_updates(minute, new),
                    )
                done += len(records)
                log.write(f"rebuild: {done:,} spans into {minute.name}, {time.perf_counter() - started:,.0f} s\n")
        await engine.dispose()
        await derive_rollups(sources={"hour": "minute", "day": "hour"})
        log.write(f"rebuild: every rollup in {time.perf_counter() - started:,.0f} s\n")


async def derive_rollups(sources: dict[str, str] | None = None) -> None:
    """Build the day rollup from the hour rollup, the overall minute rollup from the minute rollup
    and the overall hour and day ones from the hour and day ones (exact: counts and sums add, min
    and max nest, histogram bins add).

    For a database loaded by a writer that kept only the minute and hour rollups (the 10-million
    span load of bench/RESULTS.md began before the other two existed); the writer keeps all four.
    """
    settings = bench_settings()
    engine = create_engine(settings, database_url(settings))
    # Target grain -> the grain it is built from, finest first (each built before it is a source).
    derived = [
        (ROLLUP_TABLES[target], ROLLUP_TABLES[source]) for target, source in (sources or {"day": "hour"}).items()
    ]
    derived.append((metric_rollup_minute_overall, ROLLUP_TABLES["minute"]))
    # The overall hour and day rollups (migration 0014) from the finished hour and day ones.
    derived += [(metric_rollup_hour_overall, ROLLUP_TABLES["hour"]), (metric_rollup_day_overall, ROLLUP_TABLES["day"])]
    async with engine.begin() as conn:
        for rollup in ROLLUPS:
            await conn.run_sync(lambda sync, table=rollup.table: table.create(sync, checkfirst=True))
        for target, source in derived:
            rollup = next(r for r in ROLLUPS if r.table is target)
            dims = list(rollup.dimension_columns)
            if len(dims) == len(ROLLUP_DIMENSIONS):
                key: Any = source.c.dims_key
            else:  # fewer dimensions: the key of each combination, computed as the writer does
                pairs = (await conn.execute(select(*(source.c[d] for d in dims)).distinct())).all()
                key = case(
                    *(
                        (and_(*(source.c[d] == v for d, v in zip(dims, pair, strict=True))), dims_key(list(pair)))
                        for pair in pairs
                    )
                )
            bucket = time_bucket(rollup.seconds, source.c.bucket, timescaledb=False)  # date_bin: no TimescaleDB needed
            group = [bucket.label("bucket"), key.label("dims_key")]
            group += [source.c[d] for d in dims]
            columns = list(group)
            for column in target.columns[len(group) :]:
                name = column.name
                aggregate = func.min if name.endswith("_min") else func.max if name.endswith("_max") else func.sum
                columns.append(aggregate(source.c[name]).label(name))
            await conn.execute(delete(target))
            rows = select(*columns).group_by(*group)
            await conn.execute(insert(target).from_select([c.name for c in target.columns], rows))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE")
    await engine.dispose()


async def grow_to(target: int, log_path: str) -> None:
    """Copy the stored traces server-side up to `target` spans (bench/grow_dataset.py), then bring
    the metric tables up to date as `seed` would: the rollup tables rebuilt from the spans on
    plain PostgreSQL, the refresh and compression jobs run once on TimescaleDB; then check it all."""
    settings = bench_settings()
    url = make_url(settings.url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    with open(log_path, "a", buffering=1) as log:  # noqa: ASYNC230 - a progress log, not request I/O

        def say(line: str) -> None:
            log.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}\n")

        conn = await asyncpg.connect(url)
        try:
            stored = await grow_dataset.grow(conn, target=target, end=END, log=say)
            timescaledb = bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
        finally:
            await conn.close()
        say(f"grow: {stored:,} spans stored, {time.perf_counter() - started:,.0f} s")
        if timescaledb:
            engine = create_engine(settings, database_url(settings))
            async with engine.connect() as sa_conn:
                await sa_conn.execution_options(isolation_level="AUTOCOMMIT")
                await sa_conn.exec_driver_sql("SET statement_timeout = 0")
                await run_policies(sa_conn, log)
                await sa_conn.exec_driver_sql("VACUUM ANALYZE")
            await engine.dispose()
        else:
            await rebuild_rollups(log_path)
        say(f"metric tables up to date, {time.perf_counter() - started:,.0f} s")
        conn = await asyncpg.connect(url)
        try:
            tables = grow_dataset.AGGREGATES if timescaledb else grow_dataset.ROLLUPS
            problems = await grow_dataset.verify(conn, tables, end=END, log=say)
            if timescaledb:
                for row in await conn.fetch(grow_dataset.COMPRESSION):
                    say(f"compression: {dict(row)}")
        finally:
            await conn.close()
        say(f"grow done in {time.perf_counter() - started:,.0f} s: " + ("; ".join(problems) or "consistent"))
    if problems:
        raise SystemExit("inconsistent: " + "; ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(SERVERS), default="postgresql")
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed")
    seeding.add_argument("--spans", type=int, default=10_000_000)
    seeding.add_argument("--log", default="bench/seed_metrics.log")
    seeding.add_argument("--seed", type=int, default=42, help="generator seed; a second loader uses another")
    seeding.add_argument("--skip-rollups", action="store_true", help="faster load; run rebuild-rollups afterwards")
    seeding.add_argument(
        "--days", type=int, default=30, help="window before the end; 2 with ~670k spans: 10M-span density, short"
    )
    running = commands.add_parser("run")
    running.add_argument("--repeat", type=int, default=20, help="runs per query on the rollup path")
    running.add_argument("--raw-repeat", type=int, default=20, help="runs per query on the raw path")
    running.add_argument("--unaligned", action="store_true", help="windows end 7m13s before a bucket boundary")
    tracing = commands.add_parser("traces", help="trace detail and the first page of the listings")
    tracing.add_argument("--repeat", type=int, default=200, help="traces looked up, pages read")
    commands.add_parser("derive-rollups", help="build the day and overall-minute rollups from the others")
    growing = commands.add_parser("grow", help="copy the stored traces server-side up to --to spans")
    growing.add_argument("--to", type=int, default=10_000_000, help="spans wanted (about; whole sessions)")
    growing.add_argument("--log", default="bench/seed_metrics.log")
    rebuilding = commands.add_parser(
        "rebuild-rollups", help="every rollup from the stored spans (after --skip-rollups)"
    )
    rebuilding.add_argument("--log", default="bench/seed_metrics.log")
    args = parser.parse_args()
    global ADMIN_URL
    ADMIN_URL = SERVERS[args.backend]
    if args.command == "seed":
        asyncio.run(seed(args.spans, args.log, args.seed, skip_rollups=args.skip_rollups, days=args.days))
    elif args.command == "grow":
        asyncio.run(grow_to(args.to, args.log))
    elif args.command == "rebuild-rollups":
        asyncio.run(rebuild_rollups(args.log))
    elif args.command == "derive-rollups":
        asyncio.run(derive_rollups())
    elif args.command == "traces":
        asyncio.run(measure_traces(args.repeat))
    else:
        asyncio.run(measure(args.repeat, args.raw_repeat, args.unaligned))


if __name__ == "__main__":
    main()
