"""How long the first OTLP exports to a freshly started server take, against the ones after.

    .venv/bin/python bench/first_export.py --backend postgresql --workers 2 --senders 4

Starts `observatory-api serve` (ingest on) on a fresh migrated database, waits for /ready, then
`--senders` threads each export `--rounds` batches of `--batch` demo spans with the SDK's HTTP
exporter, all at once, as the exporters of several services do when the server comes up. Prints
the latency of the first round (each worker's first exports) and of the later rounds, for a
server with the start-up warm-up (ingest.warm_up) and one without, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from ingest_throughput import ADMIN_URL, _admin, _wait_ready, free_port, to_sdk_span

from observatory_api.demo.generator import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    for warm in (False, True):
        run(args, warm=warm)


def run(args: argparse.Namespace, *, warm: bool) -> None:

    now = datetime.now(UTC)
    records = []
    for spans, _ in generate(traces=args.senders * args.rounds * args.batch // 4 + 1, seed=11, end=now, days=1):
        records += spans
    batches = [records[i : i + args.batch] for i in range(0, args.senders * args.rounds * args.batch, args.batch)]
    workdir = Path(tempfile.mkdtemp(prefix="first-export-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        INGEST_ENABLED="true",
        INGEST_GRPC_PORT="0",
        API_METRICS_PORT=str(free_port()),
        LOG_LEVEL="WARNING",
        JWT_SECRET=secrets.token_hex(32),
        SECRET_KEY=secrets.token_hex(32),
        RATE_LIMIT_ENABLED="false",
        INGEST_WARM_UP=str(warm).lower(),
    )
    database = f"observatory_bench_first_{uuid.uuid4().hex[:6]}"
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
        started = time.perf_counter()
        _wait_ready(base)
        ready = time.perf_counter() - started
        sdk_batches = [[to_sdk_span(record) for record in batch] for batch in batches]
        latencies: list[list[float]] = [[] for _ in range(args.rounds)]
        barrier = threading.Barrier(args.senders)

        def send(index: int) -> None:
            exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers={"x-api-key": key}, timeout=30)
            for round_ in range(args.rounds):
                barrier.wait()
                began = time.perf_counter()
                result = exporter.export(sdk_batches[round_ * args.senders + index])
                latencies[round_].append(time.perf_counter() - began)
                assert result == SpanExportResult.SUCCESS, result

        threads = [threading.Thread(target=send, args=(i,)) for i in range(args.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        later = [value for round_ in latencies[1:] for value in round_]
        print(
            f"warm-up {'on' if warm else 'off'}: "
            f"{args.backend}, {args.workers} workers, {args.senders} senders x {args.batch} spans; "
            f"ready after {ready:.1f} s"
        )
        print(f"first round: max {max(latencies[0]):.2f} s, median {statistics.median(latencies[0]):.2f} s")
        print(f"later rounds: max {max(later):.2f} s, median {statistics.median(later):.2f} s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if args.backend == "postgresql":
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
