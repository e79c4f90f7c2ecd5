"""The Parquet row group size, measured: memory, time to the first row group, rows/s.

    .venv/bin/python bench/parquet_row_groups.py --database postgresql://... [--rows 1000000]
        [--groups 1000 5000 10000 20000] [--source-rows 10000]

Reads `--source-rows` spans once through the service's SpanRepository (as a developer sees them),
then, for each row group size, in a fresh process (pyarrow's one-time set-up done first, as a
worker's start does: `exports.parquet.preload`), writes `--rows` spans with `ParquetPageWriter`
in pages of 1,000 (the server's Parquet reads), cycling the source spans, the bytes discarded.
Reports the growth of the process's resident set from after the set-up to its peak (read after
every page), the time to the first row group's bytes, and rows/s of the writer alone.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PAGE = 1_000


def rss_mib() -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


async def source_spans(database: str, rows: int) -> list[object]:
    from observatory_api.core.listing import ListFilters
    from observatory_api.core.query import TimeWindow
    from observatory_api.db.capabilities import DatabaseCapabilities
    from observatory_api.db.engine import create_engine, database_url
    from observatory_api.settings import DatabaseSettings
    from observatory_api.spans.repository import SpanRepository

    settings = DatabaseSettings(url=database) if "://" in database else DatabaseSettings(sqlite_path=database)
    engine = create_engine(settings, database_url(settings), readonly=True)
    repository = SpanRepository(engine, DatabaseCapabilities.plain(engine))
    now = datetime.now(UTC)
    filters = ListFilters(window=TimeWindow(now - timedelta(days=30, hours=1), now))
    spans: list[object] = []
    cursor = None
    try:
        while len(spans) < rows:
            page = await repository.list_spans(filters.page(PAGE, cursor), sort="start_time", allow_content=True)
            spans.extend(page.data)
            if not page.has_more:
                break
            cursor = page.next_cursor
    finally:
        await engine.dispose()
    return spans[:rows]


def measure(args: argparse.Namespace, group: int) -> None:
    from observatory_api.exports.parquet import ParquetPageWriter, preload
    from observatory_api.spans.schemas import Span

    spans = asyncio.run(source_spans(args.database, args.source_rows))
    preload()
    before = peak = rss_mib()
    writer = ParquetPageWriter(Span, group)
    started = time.perf_counter()
    first = None
    size = 0
    for done in range(0, args.rows, PAGE):
        start = done % len(spans)
        out = writer.page(spans[start : start + PAGE])
        size += len(out)
        if first is None and size > 4:  # more than the file's magic: the first row group
            first = time.perf_counter() - started
        peak = max(peak, rss_mib())
    size += len(writer.finish())
    peak = max(peak, rss_mib())
    elapsed = time.perf_counter() - started
    print(
        f"{group:>6,}-row groups: {args.rows:,} rows, {size / 1e6:.1f} MB, first group after {first or 0:.2f} s, "
        f"{args.rows / elapsed:,.0f} rows/s, RSS growth {peak - before:.1f} MB (after set-up {before:.0f} MB)",
        flush=True,
    )


def main(args: argparse.Namespace) -> None:
    if args.one is not None:
        measure(args, args.one)
        return
    for group in args.groups:
        command = [sys.executable, __file__, "--database", args.database, "--rows", str(args.rows)]
        command += ["--source-rows", str(args.source_rows), "--one", str(group)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="a PostgreSQL URL or a SQLite file")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=10_000)
    parser.add_argument("--groups", type=int, nargs="+", default=[1_000, 5_000, 10_000, 20_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    main(parser.parse_args())
