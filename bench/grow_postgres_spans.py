"""Grow a seeded PostgreSQL benchmark database to N spans by copying its spans inside PostgreSQL.

    .venv/bin/python bench/grow_postgres_spans.py postgresql://postgres@127.0.0.1:5432/DB --spans 1000000

The PostgreSQL twin of grow_sqlite_spans.py, for the span export benchmark only
(`export_throughput.py --database URL --skip-seed`): `seed` writes a few hundred to a few
thousand spans/s through the writer on a shared 2-core machine. Copy i of a span is the same row
with trace_id shifted right by two hex digits and i's two in front (new traces, span ids
unchanged); times, attributes and content verbatim. One statement, so every copy reads the spans
as they were before it (its snapshot); LIMIT lands on N. Traces, logs and rollups are not copied.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg


async def grow(url: str, target: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        base = await conn.fetchval("SELECT count(*) FROM spans")
        copies = -(-(target - base) // base)
        if copies > 255:
            raise SystemExit("more than 255 copies: seed a larger base")
        columns = [
            r["attname"]
            for r in await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'spans'::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum"
            )
        ]
        values = ", ".join(
            "lpad(to_hex(n), 2, '0') || substr(trace_id, 1, 30)" if c == "trace_id" else c for c in columns
        )
        print(f"{base:,} spans; {copies} copies to {target:,}", flush=True)
        started = time.perf_counter()
        await conn.execute(
            f"INSERT INTO spans ({', '.join(columns)}) SELECT {values} FROM spans "
            f"CROSS JOIN generate_series(1, {copies}) AS n LIMIT {target - base}",
            timeout=3600,
        )
        await conn.execute("VACUUM ANALYZE spans", timeout=3600)
        count = await conn.fetchval("SELECT count(*) FROM spans")
        print(f"{count:,} spans ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(grow(args.url, args.spans))
