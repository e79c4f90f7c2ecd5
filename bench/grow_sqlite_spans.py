"""Grow a seeded SQLite benchmark file to N spans by copying its spans inside SQLite.

    .venv/bin/python bench/grow_sqlite_spans.py PATH/observatory.db --spans 1000000

`seed` writes 1,500-5,000 spans/s on SQLite through the TelemetryWriter (its rollups), so a
million spans take 4-11 minutes on a quiet 2-core machine and far more on a loaded one; copying
takes seconds. For the span export benchmark (`export_throughput.py --workdir PATH --skip-seed`)
only: the `spans` rows stored when this first runs are the base; copy i of a span is the same
row with trace_id shifted right by two hex digits and i's two in front (so the copies' traces
are new ones, span ids unchanged), times, attributes and content verbatim. Trace and session summaries, logs
and rollups are not copied (the span export reads `spans` alone), so the other tables no longer
match the spans. Each copy is one transaction; the last one may be partial (LIMIT) to land on N.
"""

from __future__ import annotations

import argparse
import sqlite3
import time


def grow(path: str, target: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    columns = [row[1] for row in db.execute("PRAGMA table_info(spans)")]
    base_rowid = db.execute("SELECT max(rowid) FROM spans").fetchone()[0]
    base = db.execute("SELECT count(*) FROM spans").fetchone()[0]
    count = base
    print(f"{base:,} spans; copying to {target:,}", flush=True)
    number = 0
    while count < target:
        number += 1
        prefix = f"{number:02x}"
        if number > 255:
            raise SystemExit("more than 255 copies: seed a larger base")
        values = ", ".join("? || substr(trace_id, 1, 30)" if c == "trace_id" else c for c in columns)
        limit = min(base, target - count)
        started = time.perf_counter()
        db.execute("BEGIN")
        db.execute(
            f"INSERT INTO spans ({', '.join(columns)}) SELECT {values} FROM spans "
            "WHERE rowid <= ? ORDER BY rowid LIMIT ?",
            (prefix, base_rowid, limit),
        )
        db.execute("COMMIT")
        count = db.execute("SELECT count(*) FROM spans").fetchone()[0]
        print(f"copy {number}: {count:,} spans ({time.perf_counter() - started:.1f} s)", flush=True)
    db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    grow(args.path, args.spans)
