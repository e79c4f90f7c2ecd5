"""Answers and statement counts of every `metric_engine.py` shape and a few more, two trees compared.

    # base = a worktree of main (its src/), this tree = the change; both ask the same database:
    .venv/bin/python bench/metric_answers.py --base <base>/src --url postgresql+asyncpg://.../<db> \\
        [--detect] [--cached]

Each tree runs in its own process (its `src/` first on the path) and answers each shape once
(`--cached`: twice through one segment cache, a miss then a hit), as `metric_engine.py run` calls
the engine; the SHA-256 of each encoded answer and the statements each answer ran (counted with
`before_cursor_execute`) are compared. `--detect` asks the database what it can do, as the server
does (TimescaleDB's continuous aggregates); without it, an engine's plain capabilities, as
`metric_engine.py` has them. Turn parallel workers off for a byte-for-byte check on PostgreSQL
(see `metric_alternate.py`). The URL may be `sqlite+aiosqlite:///<metric_engine.py's file>`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metric_engine as me  # the shapes and the clock of the engine bench

LATENCY = [{"id": "latency_ms", "aggregation": a} for a in ("p50", "p95", "p99")]
TTFT = {"id": "time_to_first_token_ms", "aggregation": "p99"}
TWO_HOURS = {"from": me._iso(me.NOW - timedelta(hours=2)), "to": me._iso(me.NOW)}
COST = {"id": "cost_usd", "aggregation": "sum"}
# Raw percentiles grouped, bucketed and not; rollup percentiles of two histogram metrics.
MORE: dict[str, dict[str, Any]] = {
    "raw_minute_p95_by_model_2h": {
        **TWO_HOURS,
        "metrics": [LATENCY[1], TTFT, {"id": "request_count"}],
        "group_by": ["model"],
        "interval": "minute",
        "source": "raw",
    },
    "raw_top2_providers_p50": {
        **TWO_HOURS,
        "metrics": [LATENCY[0], LATENCY[2], COST],
        "group_by": ["provider"],
        "order_by": "-cost_usd_sum",
        "limit": 2,
        "source": "raw",
    },
    "raw_trace_p95_by_kind_daily": me._week(
        metrics=[
            {"id": "trace_latency_ms", "aggregation": "p95"},
            {"id": "trace_latency_ms", "aggregation": "p50", "alias": "t50"},
        ],
        group_by=["kind"],
        interval="day",
    ),
    "raw_totals_p99_5m": {**TWO_HOURS, "metrics": [LATENCY[2], TTFT], "interval": "5m", "source": "raw"},
    "rollup_hourly_ttft_by_model": me._week(
        metrics=[LATENCY[0], TTFT, {"id": "request_count"}], group_by=["model"], interval="hour"
    ),
    "rollup_top2_models_p95": me._week(
        metrics=[LATENCY[1], COST], group_by=["model"], order_by="-cost_usd_sum", limit=2
    ),
}


async def answers(args: argparse.Namespace) -> None:
    """This process's tree: {shape#attempt: [sha256, statements]} as JSON on stdout."""
    import msgspec
    from sqlalchemy import event

    from observatory_api.db.capabilities import DatabaseCapabilities, detect_capabilities
    from observatory_api.db.engine import create_engine, database_url
    from observatory_api.metrics.continuous_aggregates import AGGREGATE_VIEWS
    from observatory_api.metrics.plan import plan_query
    from observatory_api.metrics.repository import MetricRepository
    from observatory_api.metrics.schemas import MetricQuery
    from observatory_api.metrics.segment_cache import SegmentCache
    from observatory_api.settings import DatabaseSettings, QuerySettings

    settings = DatabaseSettings(url=args.url)
    engine = create_engine(settings, database_url(settings), readonly=True)
    if args.detect:
        capabilities = await detect_capabilities(engine, continuous_aggregates=AGGREGATE_VIEWS)
    else:
        capabilities = DatabaseCapabilities.plain(engine)
    seen: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    repository = MetricRepository(engine, capabilities, segments=SegmentCache() if args.cached else None)
    found = {}
    for name, body in {**me.SHAPES, **me.NEW_SHAPES, **MORE}.items():
        for attempt in range(2 if args.cached else 1):
            plan = plan_query(
                msgspec.convert(body, MetricQuery), QuerySettings(max_range_days=400), allow_content=True, now=me.END
            )
            seen.clear()
            encoded = msgspec.json.encode(await repository.query(plan))
            found[f"{name}#{attempt}"] = [hashlib.sha256(encoded).hexdigest(), len(seen), json.loads(encoded)]
    await engine.dispose()
    print(json.dumps({"capabilities": repr(capabilities), "answers": found}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the database, as SQLAlchemy's async URL")
    parser.add_argument("--base", help="another checkout's src/, compared with this tree")
    parser.add_argument("--detect", action="store_true", help="the server's capabilities (TimescaleDB)")
    parser.add_argument("--cached", action="store_true", help="each shape twice through a segment cache")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(answers(args))
        return
    trees = {"this": Path(__file__).resolve().parent.parent / "src"}
    if args.base:
        trees = {"base": Path(args.base), **trees}
    flags = [f for f in ("--detect", "--cached") if getattr(args, f[2:])]
    found = {}
    for name, src in trees.items():
        command = [sys.executable, str(Path(__file__).resolve()), "--url", args.url, "--child", *flags]
        run = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"{name}: {run.stderr[-2000:]}")
        found[name] = json.loads(run.stdout.splitlines()[-1])
    print(f"# {args.url}, {found['this']['capabilities']}{', cached: miss then hit' if args.cached else ''}")
    print("| shape | " + " | ".join(f"{n} statements" for n in trees) + " | answers |")
    print("|---|" + "---|" * len(trees) + "---|")
    for key, (digest, _, answer) in found["this"]["answers"].items():
        counts = [str(found[n]["answers"][key][1]) for n in trees]
        same = "same"
        for n in trees:
            if found[n]["answers"][key][0] != digest:
                worst = _float_difference(found[n]["answers"][key][2], answer)
                same = "**DIFFER**" if worst is None else f"floats within {worst:.1e} (relative)"
        print(f"| {key} | " + " | ".join(counts) + f" | {same if len(trees) > 1 else digest[:16]} |")


def _float_difference(a: Any, b: Any) -> float | None:
    """The largest relative difference of two answers that differ only in float values (a cost sum
    added up in another order), or None when anything else differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return None
        parts = [_float_difference(a[k], b[k]) for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        parts = [_float_difference(x, y) for x, y in zip(a, b, strict=True)]
    elif isinstance(a, float) and isinstance(b, float):
        return abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0
    else:
        return 0.0 if a == b else None
    return None if None in parts else max(parts, default=0.0)


if __name__ == "__main__":
    main()
