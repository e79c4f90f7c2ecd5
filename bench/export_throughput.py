"""Export throughput and the server's memory while it streams: a real `serve` (one granian worker)
over a database seeded with the demo generator, exporting every span of the last 30 days.

    .venv/bin/python bench/export_throughput.py [--traces 25000] [--database postgresql://...]
        [--formats ndjson csv otlp-json parquet] [--encodings identity gzip zstd]
        [--sources OLD/src NEW/src --rounds 3] [--ceiling]

Seeds `--traces` demo traces (about 3.9 spans each) with `observatory-api seed` into a temporary
SQLite file, or into `--database` (a PostgreSQL URL; created data is kept, `seed` is idempotent),
creates a developer key, starts the server, and for each format streams `GET /api/v1/spans/export`
once, counting rows and bytes. Memory is the resident set of the server's processes (granian and
its worker), sampled every 20 ms: its growth from before the export to the peak during it.

`--sources` serves from each given source folder in turn (first on the server's PYTHONPATH), every
round (`--rounds`), so that two versions are measured alternated on the same machine at the same
time. `--ceiling` (PostgreSQL) also times, each round, a plain asyncpg fetch of the same rows in
the same order (keyset pages of 5,000, no SQLAlchemy, no Structs, no encoding, no HTTP): what
reading the rows alone costs this process and the server.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_AUTH  # noqa: E402
from tests.e2e.server import UNSET, start_server  # noqa: E402

DAYS = 30


def cli(workdir: Path, env: dict[str, str], *args: str) -> str:
    # The secrets start_server gives the server: a key is hashed with SECRET_KEY.
    secrets = {"JWT_SECRET": TEST_AUTH.jwt_secret or "", "SECRET_KEY": TEST_AUTH.secret_key or ""}
    clean = {k: v for k, v in os.environ.items() if k not in UNSET} | secrets | env
    done = subprocess.run(
        [sys.executable, "-m", "observatory_api", *args], cwd=workdir, env=clean, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def rss_kib(group: int) -> int:
    """Resident memory of every process in the server's process group."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != group:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, ProcessLookupError):
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total


def export_once(base: str, key: str, fmt: str, group: int, encoding: str) -> tuple[int, int, float, int]:
    """Rows, bytes as sent, seconds and the server's RSS growth (KiB) of one whole export."""
    now = datetime.now(UTC)
    params = {"from": (now - timedelta(days=DAYS, hours=1)).isoformat(), "to": now.isoformat(), "format": fmt}
    headers = {"X-API-Key": key, "Accept-Encoding": encoding}
    before = rss_kib(group)
    peak = [before]
    running = True

    def sample() -> None:
        while running:
            peak[0] = max(peak[0], rss_kib(group))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    parts: list[bytes] = []
    started = time.perf_counter()
    try:
        with httpx.stream("GET", f"{base}/api/v1/spans/export", params=params, headers=headers, timeout=600) as answer:
            assert answer.status_code == 200, answer.read()
            assert answer.headers.get("content-encoding", "identity") == encoding, answer.headers
            parts.extend(answer.iter_raw())  # as sent; decoded after the clock stops
    finally:
        running = False
        sampler.join()
    elapsed = time.perf_counter() - started
    body = b"".join(parts)
    text = decoded(body, answer.headers.get("content-encoding", "identity"))
    return count_rows(text, fmt), len(body), elapsed, peak[0] - before


def decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


def count_rows(text: bytes, fmt: str) -> int:
    if fmt == "parquet":
        return int(pq.ParquetFile(io.BytesIO(text)).metadata.num_rows)
    if fmt == "otlp-json":  # a request per page: count its spans
        requests = [json.loads(line) for line in text.splitlines()]
        return sum(len(sc["spans"]) for r in requests for rs in r["resourceSpans"] for sc in rs["scopeSpans"])
    if fmt == "csv":  # quoted fields hold newlines: count records, less the header
        return sum(1 for _ in csv.reader(io.StringIO(text.decode()))) - 1
    return text.count(b"\n")


async def raw_fetch(database: str) -> tuple[int, float]:
    """Rows and seconds of a plain asyncpg keyset walk over the export's rows (jsonb as text)."""
    import asyncpg

    now = datetime.now(UTC)
    start, end = now - timedelta(days=DAYS, hours=1), now
    select = "SELECT * FROM spans WHERE start_time >= $1 AND start_time < $2"
    order = "ORDER BY start_time, trace_id, span_id LIMIT 5000"
    conn = await asyncpg.connect(database)
    started, rows, key = time.perf_counter(), 0, None
    try:
        while True:
            if key is None:
                page = await conn.fetch(f"{select} {order}", start, end)
            else:
                page = await conn.fetch(
                    f"{select} AND (start_time, trace_id, span_id) > ($3, $4, $5) {order}", start, end, *key
                )
            rows += len(page)
            if len(page) < 5000:
                return rows, time.perf_counter() - started
            key = (page[-1]["start_time"], page[-1]["trace_id"], page[-1]["span_id"])
    finally:
        await conn.close()


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(args.workdir or folder)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "api-config.yml").write_text("rate_limit:\n  enabled: false\n")
        env = {"DATABASE_URL": args.database} if args.database else {}
        if not args.skip_seed:
            started = time.perf_counter()
            cli(workdir, env, "migrate")
            cli(workdir, env, "seed", "--traces", str(args.traces), "--days", str(DAYS))
            print(f"seeded {args.traces:,} traces in {time.perf_counter() - started:.0f} s")
        created = cli(workdir, env, "keys", "create", "--name", "bench", "--role", "developer")
        key = re.search(r"obs_\S+", created)
        assert key, created
        sources = args.sources or [str(ROOT / "src")]
        for round_ in range(1, args.rounds + 1):
            for source in sources:
                load = "/".join(f"{value:.1f}" for value in os.getloadavg())
                print(f"round {round_}, {source} (load average {load})", flush=True)
                served = env | {"PYTHONPATH": str(Path(source).resolve())}
                with start_server(workdir, workers=1, env=served) as server:
                    print(f"  server RSS when ready: {rss_kib(server.process.pid) / 1024:.1f} MB", flush=True)
                    for fmt in args.formats:
                        for encoding in args.encodings:
                            rows, size, elapsed, growth = export_once(
                                server.base, key.group(0), fmt, server.process.pid, encoding
                            )
                            speed = f"{size / 1e6:.1f} MB in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s"
                            print(f"  {fmt} {encoding}: {rows:,} spans, {speed}; RSS growth {growth / 1024:.1f} MB")
            if args.ceiling and args.database:
                rows, elapsed = asyncio.run(raw_fetch(args.database))
                speed = f"{rows:,} rows in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s"
                print(f"round {round_}, asyncpg fetch alone: {speed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=25_000)
    parser.add_argument("--database", help="a PostgreSQL URL; default a SQLite file in a temporary folder")
    parser.add_argument("--workdir", help="keep the SQLite file and config here (default a temporary folder)")
    parser.add_argument("--skip-seed", action="store_true", help="the database already holds the data")
    parser.add_argument("--sources", nargs="+", help="source folders to serve from in turn (default this checkout's)")
    parser.add_argument("--rounds", type=int, default=1, help="times to run every source (alternated)")
    parser.add_argument("--ceiling", action="store_true", help="also time a plain asyncpg fetch (PostgreSQL)")
    parser.add_argument("--encodings", nargs="+", default=["identity", "gzip"], choices=["identity", "gzip", "zstd"])
    parser.add_argument(
        "--formats", nargs="+", default=["ndjson", "csv"], choices=["ndjson", "csv", "otlp-json", "parquet"]
    )
    main(parser.parse_args())
