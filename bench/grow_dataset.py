"""Grow a seeded benchmark database to N spans by copying its traces server-side (`metrics_bench.py grow`).

Writing 10 million spans through the TelemetryWriter takes 1.5-4 hours on the shared 2-core
machine; copying a one-million-span load nine times with INSERT ... SELECT takes minutes. What a
copy is:

- The traces stored when `grow` first runs are the base (snapshotted once into the `bench`
  schema, so each copy reads one million rows, not the growing tables). Copy i of a trace is the
  same trace, span for span, log for log, with new ids: trace_id md5(trace_id/i), log_id
  md5(log_id/i), session_id `sess_` + 16 hex of md5(session_id/i); span ids stay (a span's
  identity is its trace_id and span_id), user ids stay (a user gets more sessions), attributes,
  prompts and every measure are copied verbatim. So the grown dataset repeats the base's trace
  shapes, models, costs and latencies: copies add volume, not variety.
- Times move by whole days: all traces of a session (or a trace without one) move by the same
  (hash of session or trace id, i) mod 30 days, wrapped into the 30-day window by the group's
  first time; so the per-day volume stays uniform and the time of day keeps the generator's daily
  shape. A group that starts in the window's last hours may end past its end, as in the base.
- The summaries are copied with the same ids and shift (a trace's and a session's summary are
  functions of their rows, which moved together), so they stay exact without a rebuild.
- The last copy may be partial (whole sessions chosen by hash) to land near the target.

Each copy is one transaction, recorded in `bench.grow_copies`: an interrupted grow resumes at the
next copy. The secondary indexes of the four tables are dropped during the copies and built again
at the end (an interrupted grow leaves them dropped until it is run again). On TimescaleDB the
compressed chunks are decompressed first (before the snapshot: see `grow`) and the refresh and
compression jobs are paused during the copies (the caller runs them once afterwards). Rollups are
not touched here: the caller rebuilds them from the spans.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from observatory_api.db.tables import logs, sessions, spans, traces

Log = Callable[[str], None]

_SNAPSHOT = {"spans": spans, "logs": logs, "traces": traces, "sessions": sessions}
# The policies `seed` and `grow` run once themselves (the refreshes first, then compression), and
# how many of their runs are in progress in this database.
POLICY_JOBS = (
    "SELECT job_id, proc_name FROM timescaledb_information.jobs "
    "WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression') "
    "ORDER BY proc_name DESC, job_id"
)
POLICY_RUNS = (
    "SELECT count(*) FROM pg_stat_activity a JOIN timescaledb_information.jobs j "
    "ON a.application_name = j.application_name WHERE a.datname = current_database() "
    "AND j.proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression')"
)


def _new_session(column: str) -> str:
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE 'sess_' || left(md5({column} || '/' || $1::int), 16) END"


# Per table: column -> the expression it is copied with (others verbatim). `b` is the base row,
# `m` the trace's map row (new_trace_id, shift), $1 the copy number.
_COPIED = {
    "spans": {
        "trace_id": "m.new_trace_id",
        "start_time": "b.start_time + m.shift",
        "end_time": "b.end_time + m.shift",
        "session_id": _new_session("b.session_id"),
    },
    "logs": {
        "trace_id": "m.new_trace_id",
        "log_id": "md5(b.log_id || '/' || $1::int)",
        "time": "b.time + m.shift",
    },
    "traces": {
        "trace_id": "m.new_trace_id",
        "start_time": "b.start_time + m.shift",
        "end_time": "b.end_time + m.shift",
        "session_id": _new_session("b.session_id"),
    },
}

# The trace -> (new id, shift) map of copy $1, keeping a $2 fraction of the groups (sessions, or
# traces without one). $3 is the window's end, the window 30 days.
_MAP = """
CREATE TEMP TABLE grow_map ON COMMIT DROP AS
SELECT t.trace_id, md5(t.trace_id || '/' || $1::int) AS new_trace_id, t.session_id,
       g.days * interval '1 day' - CASE WHEN g.first + g.days * interval '1 day' >= $3
                                        THEN interval '30 days' ELSE interval '0' END AS shift
FROM bench.base_traces t
LEFT JOIN bench.base_sessions s ON s.session_id = t.session_id
CROSS JOIN LATERAL (
  SELECT coalesce(s.first_seen, t.start_time) AS first,
         abs(hashtext(coalesce(t.session_id, t.trace_id) || '/' || $1::int)) % 30 AS days,
         abs(hashtext(coalesce(t.session_id, t.trace_id) || '#' || $1::int)) % 10000 AS pick
) g
WHERE g.pick < $2::float8 * 10000
"""


def _insert(name: str) -> str:
    table = _SNAPSHOT[name]
    overrides = _COPIED[name]
    columns = [c.name for c in table.columns]
    values = [overrides.get(c, f'b."{c}"') for c in columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return (
        f"INSERT INTO {name} ({quoted}) SELECT {', '.join(values)} "
        f"FROM bench.base_{name} b JOIN grow_map m USING (trace_id)"
    )


def _insert_sessions() -> str:
    columns = [c.name for c in sessions.columns]
    shifted = {"first_seen", "last_seen"}
    values = [
        f"b.{c} + m.shift" if c in shifted else _new_session("b.session_id") if c == "session_id" else f"b.{c}"
        for c in columns
    ]
    # Every trace of a session has the session's shift: take it from any one of them.
    return (
        f"INSERT INTO sessions ({', '.join(columns)}) SELECT {', '.join(values)} FROM bench.base_sessions b "
        "JOIN (SELECT DISTINCT session_id, shift FROM grow_map WHERE session_id IS NOT NULL) m USING (session_id)"
    )


async def grow(conn: asyncpg.Connection, *, target: int, end: datetime, log: Log) -> int:
    """Copy the base traces until the database holds about `target` spans; returns the spans stored."""
    await conn.execute("SET statement_timeout = 0")
    timescaledb = bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
    if timescaledb and not await conn.fetchval("SELECT to_regclass('bench.grow_copies') IS NOT NULL"):
        # Before the snapshot: on 2.28.3 one statement reading every compressed chunk returned
        # wrong `input` text for a third of the spans (bench/RESULTS.md, 2026-12-03).
        await _decompress(conn, log)
    await _snapshot_base(conn, log)
    base_spans = int(await conn.fetchval("SELECT count(*) FROM bench.base_spans"))
    copies = max(0.0, target / base_spans - 1)
    done = {int(r[0]) for r in await conn.fetch("SELECT copy FROM bench.grow_copies")}
    todo = [i for i in range(1, math.ceil(copies) + 1) if i not in done]
    log(f"grow: base {base_spans:,} spans, target {target:,}: {copies:.3f} copies, to do {todo}")
    if todo and timescaledb:
        await _decompress(conn, log)
    # Paused while copying (refreshing what a copy half-wrote is wasted work); left paused on
    # success: the caller runs them once and schedules them again.
    jobs = [int(r[0]) for r in await conn.fetch(POLICY_JOBS)] if timescaledb else []
    for job in jobs:
        await conn.execute("SELECT alter_job($1, scheduled => false)", job)
    try:
        if todo:
            await _drop_indexes(conn, log)
        for i in todo:
            fraction = min(1.0, copies - (i - 1))
            await _copy(conn, i, fraction, end, log)
        await _restore_indexes(conn, log)
    except BaseException:
        for job in jobs:
            await conn.execute("SELECT alter_job($1, scheduled => true)", job)
        raise
    return int(await conn.fetchval("SELECT count(*) FROM spans"))


async def _snapshot_base(conn: asyncpg.Connection, log: Log) -> None:
    if await conn.fetchval("SELECT to_regclass('bench.grow_copies') IS NOT NULL"):
        return
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        for name in _SNAPSHOT:
            await conn.execute(f"CREATE UNLOGGED TABLE bench.base_{name} AS SELECT * FROM {name}")
        await conn.execute("CREATE INDEX ON bench.base_sessions (session_id)")
        await conn.execute(
            "CREATE TABLE bench.grow_copies (copy int PRIMARY KEY, fraction float8 NOT NULL, "
            "spans bigint NOT NULL, seconds float8 NOT NULL, finished_at timestamptz NOT NULL DEFAULT now())"
        )
    await conn.execute("ANALYZE bench.base_spans, bench.base_logs, bench.base_traces, bench.base_sessions")
    log(f"grow: base snapshot in {time.perf_counter() - started:,.1f} s")


async def _drop_indexes(conn: asyncpg.Connection, log: Log) -> None:
    """Drop the secondary indexes of the copied tables (their definitions kept in bench.grow_indexes):
    on this CPU-starved machine a copy of one million spans took 7-8 minutes with them, most of it
    inserting random ids into index pages; building them once afterwards is a sort per index."""
    started = time.perf_counter()
    async with conn.transaction():
        if not await conn.fetchval("SELECT to_regclass('bench.grow_indexes') IS NOT NULL"):
            await conn.execute(
                "CREATE TABLE bench.grow_indexes AS SELECT i.indexname AS name, i.indexdef AS definition "
                "FROM pg_indexes i WHERE i.schemaname = current_schema() AND i.tablename = ANY($1::text[]) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = to_regclass(i.indexname))",
                list(_SNAPSHOT),
            )
        names = [r[0] for r in await conn.fetch("SELECT name FROM bench.grow_indexes ORDER BY name")]
        for name in names:
            await conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    log(f"grow: {len(names)} secondary indexes dropped in {time.perf_counter() - started:,.1f} s")


async def _restore_indexes(conn: asyncpg.Connection, log: Log) -> None:
    if not await conn.fetchval("SELECT to_regclass('bench.grow_indexes') IS NOT NULL"):
        return
    for name, definition in await conn.fetch("SELECT name, definition FROM bench.grow_indexes ORDER BY name"):
        started = time.perf_counter()
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            await conn.execute(definition)
        log(f"grow: index {name} built in {time.perf_counter() - started:,.1f} s")
    await conn.execute("DROP TABLE bench.grow_indexes")


async def _decompress(conn: asyncpg.Connection, log: Log) -> None:
    started = time.perf_counter()
    chunks = 0
    for table in ("spans", "logs"):
        chunks += int(
            await conn.fetchval(
                "SELECT count(decompress_chunk(c, if_compressed => true)) FROM show_chunks($1::regclass) c", table
            )
        )
    log(f"grow: {chunks} chunks decompressed in {time.perf_counter() - started:,.1f} s")


async def _copy(conn: asyncpg.Connection, i: int, fraction: float, end: datetime, log: Log) -> None:
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute(_MAP, i, fraction, end)
        await conn.execute("ANALYZE grow_map")
        counts = {}
        for name in ("spans", "logs", "traces"):
            status = await conn.execute(_insert(name), i)
            counts[name] = int(status.split()[-1])
        counts["sessions"] = int((await conn.execute(_insert_sessions(), i)).split()[-1])
        seconds = time.perf_counter() - started
        await conn.execute(
            "INSERT INTO bench.grow_copies (copy, fraction, spans, seconds) VALUES ($1, $2, $3, $4)",
            i,
            fraction,
            counts["spans"],
            seconds,
        )
    shown = ", ".join(f"{n:,} {name}" for name, n in counts.items())
    log(f"grow: copy {i} ({fraction:.3f} of the base): {shown} in {seconds:,.0f} s")


# What must hold after a grow and the rollups' rebuild (each query returns the number of offences).
CHECKS = {
    "traces whose span_count differs from their spans": """
        SELECT count(*) FROM traces t FULL JOIN (SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id) s
        USING (trace_id) WHERE t.span_count IS DISTINCT FROM s.n""",
    "sessions whose trace_count differs from their traces": """
        SELECT count(*) FROM sessions x FULL JOIN
        (SELECT session_id, count(*) AS n FROM traces WHERE session_id IS NOT NULL GROUP BY session_id) t
        USING (session_id) WHERE x.trace_count IS DISTINCT FROM t.n""",
    "logs naming a trace that is not stored": """
        SELECT count(*) FROM logs l WHERE l.trace_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = l.trace_id)""",
}


def total_checks(tables: tuple[str, ...]) -> dict[str, str]:
    """Every rollup (or continuous aggregate) counts every span and sums every cost."""
    checks = {}
    for table in tables:
        checks[f"{table}: span_count total differs from the spans"] = (
            f"SELECT abs((SELECT coalesce(sum(span_count), 0) FROM {table}) - (SELECT count(*) FROM spans))"
        )
        checks[f"{table}: cost total differs from the spans (1e-9 relative)"] = (
            f"SELECT (abs((SELECT coalesce(sum(cost_usd_sum), 0) FROM {table}) - s.c) > 1e-9 * greatest(s.c, 1))::int "
            "FROM (SELECT coalesce(sum(cost_usd), 0) AS c FROM spans) s"
        )
    return checks


async def verify(conn: asyncpg.Connection, rollups: tuple[str, ...], *, end: datetime, log: Log) -> list[str]:
    """Run every check; returns the failed ones. Also logs the spans per day of the window (uniformity)."""
    await conn.execute("SET statement_timeout = 0")
    problems = []
    for name, sql in {**CHECKS, **total_checks(rollups)}.items():
        started = time.perf_counter()
        offences = int(await conn.fetchval(sql))
        log(f"check: {name}: {offences} ({time.perf_counter() - started:,.1f} s)")
        if offences:
            problems.append(f"{name}: {offences}")
    per_day = sorted(
        int(r[0])
        for r in await conn.fetch(
            "SELECT count(*) FROM spans WHERE start_time >= $1 AND start_time < $2 "
            "GROUP BY date_trunc('day', start_time AT TIME ZONE 'UTC')",
            end - timedelta(days=30),
            end,
        )
    )
    total = int(await conn.fetchval("SELECT count(*) FROM spans"))
    inside = sum(per_day)
    log(
        f"spans: {total:,}, {inside:,} in the 30-day window; per day min {per_day[0]:,}, max {per_day[-1]:,}, "
        f"mean {inside / max(1, len(per_day)):,.0f} over {len(per_day)} days"
    )
    return problems


# Every grain with every dimension, and with only status and kind (`_overall`; hour and day: 0014).
ROLLUPS = tuple(f"metric_rollup_{grain}{kept}" for grain in ("minute", "hour", "day") for kept in ("", "_overall"))
AGGREGATES = tuple(name.replace("_rollup_", "_cagg_") for name in ROLLUPS)
COMPRESSION = """
SELECT h AS hypertable, number_compressed_chunks AS compressed_chunks, total_chunks,
       pg_size_pretty(before_compression_total_bytes) AS before,
       pg_size_pretty(after_compression_total_bytes) AS after,
       round(before_compression_total_bytes::numeric / nullif(after_compression_total_bytes, 0), 1) AS ratio
FROM unnest(ARRAY['spans', 'logs']) h, hypertable_compression_stats(h::regclass)
"""
