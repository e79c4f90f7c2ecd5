"""OTLP ingest throughput: the OpenTelemetry SDK exporter sends realistic spans to a running server.

    .venv/bin/python bench/ingest_throughput.py --backend postgresql --spans 100000 --workers 2
    .venv/bin/python bench/ingest_throughput.py --transport both --spans 10000

`--transport` picks the SDK exporter: `http` (OTLP/HTTP protobuf, the default), `grpc` (OTLP/gRPC on
the server's INGEST_GRPC_PORT), or `both`: one server, four runs in the order http, grpc, grpc,
http (so that neither transport always meets the emptier database), each with its own `--spans`
(seeds `--seed` + run number).

Starts `observatory-api serve` (ingest enabled) on a free port against a fresh migrated database,
turns demo records into SDK `ReadableSpan`s with GenAI attributes, exports them in batches of
`--batch` (512: the SDK BatchSpanProcessor's default) from `--senders` processes (one exporter
each, like one instrumented service each; bounded by --spans and --seconds), and prints spans per
second as stored (counted in the database afterwards), the CPU time each side used, and a
consistency check of the summaries and rollups of the traces it sent, and the server's resident
memory sampled every second. Everything runs on 127.0.0.1.

`--payload realistic` sends bench/realistic_otlp.py's requests instead (~3 KB of GenAI and
OpenInference attributes a span), encoded before the run, one request at a time per sender process:

    .venv/bin/python bench/ingest_throughput.py --payload realistic --senders 4 --spans 60000 --seconds 60

`--database NAME` sends into an existing PostgreSQL database instead (kept afterwards), e.g. the
10-million-span one of bench/metrics_bench.py: ingest into a large database. Give each run its
own `--seed`: spans already stored are skipped, and the count would say so.

Timing of the spans (`--timing`):
  live  what a service producing `--rate` spans/s exports: the demo traces keep their shape and
        durations, their start times are packed into the window that many spans cover at that
        rate, and spans are exported in the order they end (as BatchSpanProcessor does).
  day   the demo generator's order over one day: every batch spreads over the whole day (a
        worst case for the minute rollups; no exporter sends this).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.process
import multiprocessing.synchronize
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import httpx
import msgspec
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from sqlalchemy.engine import make_url

from observatory_api.core.records import SpanRecord
from observatory_api.demo.generator import generate

SERVERS = {
    "postgresql": os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    # ../shared/timescaledb/start.sh
    "timescaledb": os.environ.get("OBSERVATORY_BENCH_TIMESCALEDB_URL", "postgresql://postgres@127.0.0.1:5433/postgres"),
}
ADMIN_URL = SERVERS["postgresql"]  # the server of --backend (postgresql or timescaledb)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def to_sdk_span(record: SpanRecord) -> ReadableSpan:
    trace_id, span_id = int(record.trace_id, 16), int(record.span_id, 16)
    parent = SpanContext(trace_id, int(record.parent_span_id, 16), is_remote=False) if record.parent_span_id else None
    attributes: dict[str, object] = {"gen_ai.operation.name": "chat" if record.kind == "llm" else record.kind}
    if record.model:
        attributes.update(
            {
                "gen_ai.provider.name": record.provider or "",
                "gen_ai.request.model": record.model,
                "gen_ai.usage.input_tokens": record.input_tokens or 0,
                "gen_ai.usage.output_tokens": record.output_tokens or 0,
                "gen_ai.response.finish_reasons": [record.finish_reason or "stop"],
            }
        )
    for key, value in (("user.id", record.user_id), ("session.id", record.session_id)):
        if value:
            attributes[key] = value
    if record.input:
        attributes["input.value"] = record.input
    if record.output:
        attributes["output.value"] = record.output
    resource = Resource.create({"service.name": record.service_name, "deployment.environment.name": "bench"})
    return ReadableSpan(
        name=record.name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1)),
        parent=parent,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR if record.status == "error" else StatusCode.OK),
        start_time=int(record.start_time.timestamp() * 1e9),
        end_time=int(record.end_time.timestamp() * 1e9),
    )


def live_timing(records: list[SpanRecord], *, rate: float, end: datetime) -> list[SpanRecord]:
    """`records` (one day of traces ending at `end`) as a service producing `rate` spans/s exports
    them: trace start times packed into the last len(records)/rate seconds, each trace shifted as
    a whole (durations and shape kept), spans in the order they end."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for record in records:
        by_trace[record.trace_id].append(record)
    window = len(records) / rate
    day_start = end - timedelta(days=1)
    shifted: list[SpanRecord] = []
    for trace in by_trace.values():
        start = min(record.start_time for record in trace)
        packed = end - timedelta(seconds=window) + (start - day_start) * (window / 86_400)
        offset = packed - start
        shifted += [
            msgspec.structs.replace(r, start_time=r.start_time + offset, end_time=r.end_time + offset) for r in trace
        ]
    return sorted(shifted, key=lambda record: record.end_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgresql", "timescaledb", "sqlite"], default="postgresql")
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per export request")
    parser.add_argument("--senders", type=int, default=4, help="concurrent exporter threads")
    parser.add_argument("--workers", type=int, default=2, help="granian workers")
    parser.add_argument("--seconds", type=float, default=300, help="stop sending after this long")
    parser.add_argument("--timing", choices=["live", "day"], default="live", help="see the module docstring")
    parser.add_argument("--rate", type=float, default=5000, help="live timing: spans/s of the simulated service")
    parser.add_argument("--database", help="an existing PostgreSQL database to send into (kept)")
    parser.add_argument("--seed", type=int, default=7, help="demo generator seed (the trace and span ids)")
    parser.add_argument("--transport", choices=["http", "grpc", "both"], default="http")
    parser.add_argument(
        "--payload",
        choices=["sdk", "realistic"],
        default="sdk",
        help="sdk: demo spans through the SDK exporter; realistic: bench/realistic_otlp.py's requests, pre-encoded",
    )
    args = parser.parse_args()
    if args.database and args.backend == "sqlite":
        parser.error("--database needs --backend postgresql or timescaledb")
    global ADMIN_URL
    ADMIN_URL = SERVERS.get(args.backend, ADMIN_URL)
    transports = ["http", "grpc", "grpc", "http"] if args.transport == "both" else [args.transport]

    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    grpc_port = free_port()
    env.update(
        {
            "INGEST_ENABLED": "true",
            "INGEST_GRPC_PORT": str(grpc_port),
            "API_METRICS_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET": secrets.token_hex(32),
            "SECRET_KEY": secrets.token_hex(32),
            "RATE_LIMIT_ENABLED": "false",
        }
    )
    database = args.database or f"observatory_bench_ingest_{uuid.uuid4().hex[:6]}"
    if args.backend != "sqlite":
        if not args.database:
            asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
        env["DATABASE_URL"] = make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)
        subprocess.run([sys.executable, "-m", "observatory_api", "migrate"], env=env, cwd=workdir, check=True)
    key = subprocess.run(
        [sys.executable, "-m", "observatory_api", "keys", "create", "--name", "bench", "--role", "ingest"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    command = [sys.executable, "-m", "observatory_api", "serve", "--port", str(port), "--workers", str(args.workers)]
    server = subprocess.Popen(command, env=env, cwd=workdir, start_new_session=True, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base)
        endpoints = {"http": f"{base}/v1/traces", "grpc": f"127.0.0.1:{grpc_port}"}
        for number, transport in enumerate(transports):
            if args.payload == "realistic":
                batches, trace_ids = _realistic(args, seed=args.seed + number)
            else:
                records = _records(args, seed=args.seed + number)
                trace_ids = sorted({record.trace_id for record in records})
                batches = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
            senders = _start_senders(batches, args.senders, endpoints[transport], transport, key, args.seconds)
            cpu_before = _cpu_seconds(server.pid, database)
            memory = _RssSampler(server.pid)
            memory.start()
            started = time.perf_counter()
            for sender in senders:
                sender.go.set()
            results = [sender.results.recv() for sender in senders]
            elapsed = time.perf_counter() - started
            memory.stop()
            cpu = {side: used - cpu_before.get(side, 0.0) for side, used in _cpu_seconds(server.pid, database).items()}
            sent = sum(accepted for accepted, _ in results)
            cpu["client"] = sum(used for _, used in results)
            for sender in senders:
                sender.process.join(timeout=30)
            stored = _count(args.backend, database, workdir, trace_ids)
            print(
                f"{args.backend} ({args.timing} timing, {transport}): {sent:,} spans sent in {len(batches)} batches "
                f"of {args.batch} from {args.senders} senders to {args.workers} workers; {stored:,} stored in "
                f"{elapsed:.1f} s = {stored / elapsed:,.0f} spans/s"
            )
            print("CPU seconds while sending: " + ", ".join(f"{side} {used:.1f}" for side, used in cpu.items()))
            print(memory.summary())
            problems = _inconsistencies(args.backend, database, workdir, trace_ids)
            print(
                "consistency: "
                + ("summaries and rollups match the stored spans" if not problems else "; ".join(problems))
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if args.backend != "sqlite" and not args.database:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


class _Sender(NamedTuple):
    process: multiprocessing.process.BaseProcess
    go: multiprocessing.synchronize.Event
    results: Connection  # (spans accepted, CPU seconds spent sending)


def _records(args: argparse.Namespace, *, seed: int) -> list[SpanRecord]:
    now = datetime.now(UTC)
    records: list[SpanRecord] = []
    for spans, _ in generate(traces=args.spans // 4 + 1, seed=seed, end=now, days=1):
        records += spans
    records = records[: args.spans]
    if args.timing == "live":
        records = live_timing(records, rate=args.rate, end=now)
    return records


def _start_senders(
    batches: list[Any], count: int, endpoint: str, transport: str, key: str, seconds: float
) -> list[_Sender]:
    """One process per sender, like one instrumented service each (threads in one process would
    share a GIL and encode one at a time). Each turns its batches into SDK spans, then waits."""
    context = multiprocessing.get_context("fork")
    senders = []
    for index in range(count):
        go = context.Event()
        ready, results = context.Pipe()
        mine = batches[index::count]
        process = context.Process(target=_send, args=(mine, endpoint, transport, key, seconds, go, ready), daemon=True)
        process.start()
        senders.append(_Sender(process, go, results))
    for sender in senders:
        if sender.results.recv() != "ready":
            raise SystemExit("a sender failed to start")
    return senders


def _send(
    batches: list[Any],
    endpoint: str,
    transport: str,
    key: str,
    seconds: float,
    go: multiprocessing.synchronize.Event,
    results: Connection,
) -> None:
    if batches and isinstance(batches[0], tuple):  # pre-encoded requests: (spans, protobuf body)
        _send_bodies(batches, endpoint, key, seconds, go, results)
        return
    sdk_batches = [[to_sdk_span(record) for record in batch] for batch in batches]
    exporter: OTLPSpanExporter | GrpcSpanExporter
    if transport == "grpc":
        exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True, headers={"x-api-key": key})
    else:
        exporter = OTLPSpanExporter(endpoint=endpoint, headers={"x-api-key": key})
    results.send("ready")
    go.wait()
    started, cpu = time.perf_counter(), time.process_time()
    accepted = 0
    for batch in sdk_batches:  # one export at a time, as BatchSpanProcessor does
        if exporter.export(batch) == SpanExportResult.SUCCESS:
            accepted += len(batch)
        if time.perf_counter() - started > seconds:
            break
    results.send((accepted, time.process_time() - cpu))


def _send_bodies(
    bodies: list[tuple[int, bytes]],
    endpoint: str,
    key: str,
    seconds: float,
    go: multiprocessing.synchronize.Event,
    results: Connection,
) -> None:
    """As an exporter does, one request at a time, with requests encoded beforehand."""
    headers = {"content-type": "application/x-protobuf", "x-api-key": key}
    with httpx.Client(timeout=60) as http:
        results.send("ready")
        go.wait()
        started, cpu = time.perf_counter(), time.process_time()
        accepted = 0
        for count, body in bodies:
            if http.post(endpoint, content=body, headers=headers).status_code == 200:
                accepted += count
            if time.perf_counter() - started > seconds:
                break
    results.send((accepted, time.process_time() - cpu))


def _realistic(args: argparse.Namespace, *, seed: int) -> tuple[list[tuple[int, bytes]], list[str]]:
    """bench/realistic_otlp.py's requests, and the trace ids they hold."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.realistic_otlp import export_bodies

    bodies = export_bodies(spans=args.spans, batch=args.batch, seed=seed, timing=args.timing, rate=args.rate)
    trace_ids = set()
    for _, body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for entry in request.resource_spans:
            for scope in entry.scope_spans:
                trace_ids.update(span.trace_id.hex() for span in scope.spans)
    return bodies, sorted(trace_ids)


class _RssSampler:
    """The server's memory (launcher and workers, /proc), sampled every second: summed RSS, which
    counts a page shared by several processes once per process, and summed PSS (smaps_rollup),
    which splits each shared page between its sharers, so the sum counts it once."""

    def __init__(self, server_pid: int) -> None:
        self._pid = server_pid
        self._samples: list[float] = []
        self._pss: list[float] = []
        self._largest: dict[int, float] = {}  # pid -> its largest RSS (MB)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            rss, pss = self._memory_mb()
            self._samples.append(rss)
            self._pss.append(pss)
            if self._done.wait(1.0):
                return

    def _memory_mb(self) -> tuple[float, float]:
        total = pss = 0
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(entry.name) == self._pid or int(fields[1]) == self._pid:
                    status = (entry / "status").read_text()
                    kib = int(status.split("VmRSS:", 1)[1].split()[0])
                    pss += int((entry / "smaps_rollup").read_text().split("\nPss:", 1)[1].split()[0])
                    total += kib
                    self._largest[int(entry.name)] = max(self._largest.get(int(entry.name), 0.0), kib / 1024)
            except (OSError, IndexError, ValueError):
                continue
        return total / 1024, pss / 1024

    def summary(self) -> str:
        lines = []
        for name, samples in (("RSS", self._samples or [0.0]), ("PSS", self._pss or [0.0])):
            third = max(1, len(samples) // 3)
            lines.append(
                f"server {name} (launcher and workers, summed) MB: first {samples[0]:.0f}, max {max(samples):.0f}, "
                f"last {samples[-1]:.0f}; mean of the first third {statistics.mean(samples[:third]):.0f}, "
                f"of the last third {statistics.mean(samples[-third:]):.0f} ({len(samples)} samples)"
            )
        largest = ", ".join(f"{mb:.0f}" for mb in sorted(self._largest.values(), reverse=True))
        return "\n".join(lines) + f"\nlargest RSS per process: {largest}"


def _cpu_seconds(server_pid: int, database: str) -> dict[str, float]:
    """CPU time used so far by the server (launcher and workers) and PostgreSQL's backends for
    `database`; Linux /proc only."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {"server": 0.0, "postgres": 0.0}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        side = None
        if int(entry.name) == server_pid or int(fields[1]) == server_pid:
            side = "server"
        elif command.startswith(b"postgres:") and database.encode() in command:
            side = "postgres"
        if side is not None:
            used[side] += (int(fields[11]) + int(fields[12])) / tick
    return used


# `{sent}` is replaced by the backend's test for "one of the trace ids this run sent" (one parameter).
_SENT = {
    "postgresql": "= ANY($1::text[])",
    "timescaledb": "= ANY($1::text[])",
    "sqlite": "IN (SELECT value FROM json_each(?))",
}
_CHECKS = {
    "traces whose span_count differs from their spans": (
        "SELECT count(*) FROM traces t WHERE t.trace_id {sent} "
        "AND t.span_count <> (SELECT count(*) FROM spans s WHERE s.trace_id = t.trace_id)"
    ),
    "traces missing for stored spans": (
        "SELECT count(DISTINCT trace_id) FROM spans s WHERE s.trace_id {sent} AND NOT EXISTS "
        "(SELECT 1 FROM traces t WHERE t.trace_id = s.trace_id)"
    ),
    "sessions whose trace_count differs from their traces": (
        "SELECT count(*) FROM sessions x WHERE x.session_id IN (SELECT session_id FROM traces WHERE trace_id {sent}) "
        "AND x.trace_count <> (SELECT count(*) FROM traces t WHERE t.session_id = x.session_id)"
    ),
}
# Whole tables: in a database the run did not create, these hold only if they held before. Where
# TimescaleDB's continuous aggregates replace the rollup tables (the writer leaves those empty),
# the aggregates are checked instead (real-time aggregation: every committed span counts).
# Every grain with every dimension, and with only status and kind (`_overall`; hour and day: 0014).
_ROLLUPS = tuple(f"metric_rollup_{grain}{kept}" for grain in ("minute", "hour", "day") for kept in ("", "_overall"))
_AGGREGATES = tuple(name.replace("_rollup_", "_cagg_") for name in _ROLLUPS)
_HAS_AGGREGATES = "SELECT count(*) = 6 FROM pg_class WHERE relname = ANY($1::text[]) AND relkind IN ('v', 'm')"


def _totals(tables: tuple[str, ...]) -> dict[str, str]:
    return {
        f"{table} total differs from the spans": (
            f"SELECT abs((SELECT coalesce(sum(span_count), 0) FROM {table}) - (SELECT count(*) FROM spans))"
        )
        for table in tables
    }


def _inconsistencies(backend: str, database: str, workdir: Path, trace_ids: list[str]) -> list[str]:
    """What the stored summaries and rollups get wrong about the stored spans (nothing, hopefully)."""
    checks = {name: sql.replace("{sent}", _SENT[backend]) for name, sql in _CHECKS.items()}
    if backend == "sqlite":
        import sqlite3

        sent = msgspec.json.encode(trace_ids).decode()
        with sqlite3.connect(workdir / "observatory.db") as db:
            found = {name: int(db.execute(sql, (sent,)).fetchone()[0]) for name, sql in checks.items()}
            found.update({name: int(db.execute(sql).fetchone()[0]) for name, sql in _totals(_ROLLUPS).items()})
    else:

        async def check() -> dict[str, int]:
            connection = await asyncpg.connect(make_url(ADMIN_URL).set(database=database).render_as_string(False))
            try:
                found = {name: int(await connection.fetchval(sql, trace_ids)) for name, sql in checks.items()}
                aggregates = await connection.fetchval(_HAS_AGGREGATES, list(_AGGREGATES))
                totals = _totals(_AGGREGATES if aggregates else _ROLLUPS)
                return found | {name: int(await connection.fetchval(sql)) for name, sql in totals.items()}
            finally:
                await connection.close()

        found = asyncio.run(check())
    return [f"{name}: {count}" for name, count in found.items() if count]


def _wait_ready(base: str, path: str = "/ready") -> None:
    """Up to 60 s for the server at `base` to answer `path` with 200 (read_ceiling.py and
    first_export.py wait with it too)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer {path}")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _count(backend: str, database: str, workdir: Path, trace_ids: list[str]) -> int:
    """The spans of `trace_ids` stored."""
    sql = f"SELECT count(*) FROM spans WHERE trace_id {_SENT[backend]}"
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(workdir / "observatory.db") as db:
            return int(db.execute(sql, (msgspec.json.encode(trace_ids).decode(),)).fetchone()[0])

    async def count() -> int:
        connection = await asyncpg.connect(make_url(ADMIN_URL).set(database=database).render_as_string(False))
        try:
            return int(await connection.fetchval(sql, trace_ids))
        finally:
            await connection.close()

    return asyncio.run(count())


if __name__ == "__main__":
    main()
