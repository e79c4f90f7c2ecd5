"""OTLP ingest throughput: the OpenTelemetry SDK exporter sends realistic spans to a running server.

    .venv/bin/python bench/ingest_throughput.py --backend postgresql --spans 100000 --workers 2

Starts `observatory-api serve` (ingest enabled) on a free port against a fresh migrated database,
turns demo records into SDK `ReadableSpan`s with GenAI attributes, exports them in batches of
`--batch` from `--senders` threads (bounded by --spans and --seconds), and prints spans per second
as stored (counted in the database afterwards). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from sqlalchemy.engine import make_url

from observatory_api.demo.generator import generate
from observatory_api.storage.records import SpanRecord

ADMIN_URL = os.environ.get("OBSERVATORY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per export request")
    parser.add_argument("--senders", type=int, default=4, help="concurrent exporter threads")
    parser.add_argument("--workers", type=int, default=2, help="granian workers")
    parser.add_argument("--seconds", type=float, default=300, help="stop sending after this long")
    args = parser.parse_args()

    records: list[SpanRecord] = []
    for spans, _ in generate(traces=args.spans // 4 + 1, seed=7, end=datetime.now(UTC), days=1):
        records += spans
    records = records[: args.spans]
    sdk_spans = [to_sdk_span(record) for record in records]
    batches = [sdk_spans[i : i + args.batch] for i in range(0, len(sdk_spans), args.batch)]

    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "INGEST_ENABLED": "true",
            "API_METRICS_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET": secrets.token_hex(32),
            "SECRET_KEY": secrets.token_hex(32),
            "RATE_LIMIT_ENABLED": "false",
        }
    )
    database = f"observatory_bench_ingest_{uuid.uuid4().hex[:6]}"
    if args.backend == "postgresql":
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
        local = threading.local()

        def send(batch: list[ReadableSpan]) -> int:
            if not hasattr(local, "exporter"):  # one exporter (one HTTP session) per sender thread
                local.exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers={"x-api-key": key})
            exporter = local.exporter
            return len(batch) if exporter.export(batch) == SpanExportResult.SUCCESS else 0

        started = time.perf_counter()
        sent = 0
        with ThreadPoolExecutor(max_workers=args.senders) as pool:
            for accepted in pool.map(send, batches):
                sent += accepted
                if time.perf_counter() - started > args.seconds:
                    break
        elapsed = time.perf_counter() - started
        stored = _count(args.backend, database, workdir)
        print(
            f"{args.backend}: {sent:,} spans sent in {len(batches)} batches of {args.batch} from {args.senders} "
            f"senders to {args.workers} workers; {stored:,} stored in {elapsed:.1f} s = {stored / elapsed:,.0f} spans/s"
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if args.backend == "postgresql":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _count(backend: str, database: str, workdir: Path) -> int:
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(workdir / "observatory.db") as db:
            return int(db.execute("SELECT count(*) FROM spans").fetchone()[0])

    async def count() -> int:
        connection = await asyncpg.connect(make_url(ADMIN_URL).set(database=database).render_as_string(False))
        try:
            return int(await connection.fetchval("SELECT count(*) FROM spans"))
        finally:
            await connection.close()

    return asyncio.run(count())


if __name__ == "__main__":
    main()
