"""Where a worker's Python heap goes under realistic ingest: tracemalloc in one process.

    PYTHONPATH=src .venv/bin/python bench/ingest_heap.py --requests 24

The real app (`create_app`, ingest on, a fresh SQLite file) receives bench/realistic_otlp.py's
requests of 512 spans from `--threads` threads through the sync TestClient: a warm-up half, then
tracemalloc starts; after each of two more halves the process idles 8 s, collects, and takes a
snapshot. Prints RSS and traced memory, then what grew between the snapshots, grouped by the
innermost frames of observatory_api (what is still allocated once requests are answered).
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.realistic_otlp import export_bodies
from litestar.testing import TestClient
from tests.conftest import auth_headers, make_settings

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, FeatureSettings


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=24, help="requests per half (three halves)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=25)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    half = args.requests // 2
    bodies = [body for _, body in export_bodies(spans=512 * half * 3, batch=512)]
    database = DatabaseSettings(sqlite_path=str(Path(tempfile.mkdtemp(prefix="ingest-heap-")) / "heap.db"))
    settings = make_settings(database, features=FeatureSettings(ingest=True))
    headers = {**auth_headers(settings, "ingest"), "content-type": "application/x-protobuf"}

    def run(client: TestClient[Any], part: list[bytes]) -> None:
        def send(mine: list[bytes]) -> None:
            for body in mine:
                answer = client.post("/v1/traces", content=body, headers=headers)
                if answer.status_code != 200:
                    print("refused:", answer.status_code, answer.text[:120])

        threads = [threading.Thread(target=send, args=(part[i :: args.threads],)) for i in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def settled() -> tracemalloc.Snapshot:
        time.sleep(8)
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        print(f"RSS {rss_mb():.0f} MB, traced (now, peak) {tracemalloc.get_traced_memory()}")
        return snapshot

    with TestClient(create_app(settings)) as client:
        run(client, bodies[:half])
        tracemalloc.start(args.frames)
        run(client, bodies[half : 2 * half])
        first = settled()
        run(client, bodies[2 * half :])
        second = settled()
    growth: collections.Counter[str] = collections.Counter()
    for stat in second.compare_to(first, "traceback"):
        ours = [frame for frame in stat.traceback if "observatory_api" in frame.filename]
        innermost = list(reversed(ours))[:3] if ours else [stat.traceback[-1]]
        growth[" <- ".join(f"{frame.filename.split('/')[-1]}:{frame.lineno}" for frame in innermost)] += stat.size_diff
    for where, size in growth.most_common(20):
        print(f"{size / 1024:9.0f} KiB  {where}")


if __name__ == "__main__":
    main()
