"""`observatory-api`: serve, migrate, seed, summaries rebuild, config check, keys, token, models, export."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from observatory_api.exports.cli import add_export_commands
from observatory_api.models.cli import add_model_commands
from observatory_api.security.cli import DEMO_INGEST_KEY_NAME, add_security_commands, create_demo_key
from observatory_api.settings import Settings, load_settings, masked
from observatory_api.settings.errors import ConfigError

if TYPE_CHECKING:
    from litestar import Litestar
    from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_DEMO_TRACES = 5000
# How long a writing command waits at its end for its invalidations to reach Redis.
PUBLISH_WAIT_SECONDS = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = load_settings(
            Path(args.config) if args.config else None,
            overrides=_serve_overrides(args),
            production_checklist=getattr(args, "production", False),
        )
    except ConfigError as exc:
        print(f"observatory-api: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"observatory-api: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from observatory_api.db.connect_errors import connection_problem

        problem = connection_problem(exc, settings.database)
        if problem is None:
            raise
        print(f"observatory-api: {problem}", file=sys.stderr)
        return 1


def _serve_overrides(args: argparse.Namespace) -> dict[str, object]:
    """`serve --host/--port/--workers` as settings, so that the checks that depend on them (a
    non-loopback host needs real secrets; several workers in production need Redis) see them."""
    if args.run is not _serve:
        return {}
    given = {"server.host": args.host, "server.port": args.port, "server.workers": args.workers}
    return {key: value for key, value in given.items() if value is not None}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="observatory-api", description=__doc__)
    parser.add_argument("--config", help="path of api-config.yml (default: $OBSERVATORY_CONFIG or ./api-config.yml)")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="serve the API with granian")
    serve.add_argument("--host", help="bind address (default: server.host / API_HOST)")
    serve.add_argument("--port", type=int, help="port (default: server.port / API_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers / API_WORKERS)")
    serve.add_argument("--reload", action="store_true", help="restart on source changes (development)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help=f"migrate, and seed {DEFAULT_DEMO_TRACES} demo traces when the database is empty, before serving",
    )
    serve.add_argument("--demo-traces", type=int, default=DEFAULT_DEMO_TRACES, help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest revision")
    migrate.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    migrate.set_defaults(run=_migrate)

    seed = commands.add_parser("seed", help="write deterministic demo data (migrates first)")
    seed.add_argument("--traces", type=int, default=DEFAULT_DEMO_TRACES, help="number of traces (default 5000)")
    seed.add_argument("--seed", type=int, default=42, help="random seed: the same seed writes the same data")
    seed.add_argument("--days", type=int, default=30, help="spread the traces over this many days up to the end")
    seed.add_argument("--end", help="end of the time window, RFC 3339 (default: now); the ids depend on it too")
    seed.add_argument("--append", action="store_true", help="write beside data already stored (refused without it)")
    seed.set_defaults(run=_seed)

    summaries = commands.add_parser("summaries", help="trace and session summaries (needs the owner DATABASE_URL)")
    summary_commands = summaries.add_subparsers(title="summaries commands")
    rebuild = summary_commands.add_parser(
        "rebuild", help="recompute every trace and session summary from the stored spans (safe beside ingest)"
    )
    rebuild.set_defaults(run=_rebuild_summaries)

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(title="config commands")
    check = config_commands.add_parser("check", help="validate and print the effective configuration, secrets masked")
    check.add_argument("--production", action="store_true", help="also enforce the production checklist")
    check.set_defaults(run=_config_check)
    add_security_commands(commands)
    add_model_commands(commands)
    add_export_commands(commands, make_app=_make_app)
    return parser


def _make_app(settings: Settings) -> Litestar:
    """The app of `export --direct` (imported late, as for serve: see main)."""
    from observatory_api.app import create_app

    return create_app(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.db.revisions import MissingMigrations, head_revision
    from observatory_api.startup import StartupError, check_port_free, say

    # `--host`, `--port` and `--workers` are already in the settings (and checked with them).
    host, port, workers = settings.server.host, settings.server.port, settings.server.workers
    say(f"starting ({settings.environment}, {_database_name(settings)}, {workers} worker(s))")
    try:
        head_revision()  # no migrations (a partial copy of the tree): one line, not each worker's traceback
        check_port_free(host, port)  # before seeding: a busy port is one line, not a traceback later
        return _serve_checked(args, settings)
    except (StartupError, MissingMigrations) as exc:
        print(f"observatory-api: {exc}", file=sys.stderr)
        return 1


def _serve_checked(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.observability.metrics_server import prepare_multiprocess_dir
    from observatory_api.startup import start_metrics

    # First, before anything imports prometheus_client (the demo seeding included) and before
    # granian forks the workers: they inherit PROMETHEUS_MULTIPROC_DIR and write their values there.
    metrics_dir = prepare_multiprocess_dir()
    try:
        # A busy 9090 (Prometheus' own default) is common on a developer's machine: there the
        # metrics move to a free port; staging and production stop instead (scrapers need the port).
        fall_back = settings.environment in ("development", "test")
        metrics = start_metrics(settings.server.host, settings.server.metrics_port, metrics_dir, fall_back=fall_back)
    except BaseException:
        metrics_dir.cleanup()
        raise
    try:
        return _run_granian(args, settings, metrics_port=metrics.port, metrics_dir=metrics_dir.path)
    finally:
        metrics.close()
        metrics_dir.cleanup()


def _database_name(settings: Settings) -> str:
    if settings.database.url:
        return "PostgreSQL"
    return f"SQLite {settings.database.sqlite_path}"


def _run_granian(args: argparse.Namespace, settings: Settings, *, metrics_port: int, metrics_dir: Path) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    from observatory_api.db.engine import upgrade_if_embedded
    from observatory_api.startup import preload_worker_imports

    host, port = settings.server.host, settings.server.port
    _hand_to_workers(args, settings)
    if args.demo:
        asyncio.run(_prepare_demo(settings, args.demo_traces))
    else:  # once, before the fork: two workers upgrading a new SQLite file at once collide (one fails to start)
        asyncio.run(upgrade_if_embedded(settings.database))
    if not args.reload:
        preload_worker_imports(settings, metrics_dir)
    print(f"observatory-api: serving on http://{host}:{port} (docs: http://{host}:{port}/schema/swagger)", flush=True)
    print(f"observatory-api: metrics on http://{host}:{metrics_port}/metrics", flush=True)
    server = Granian(
        "observatory_api.app:create_app_from_environment",
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=settings.server.workers,
        reload=args.reload,
        reload_paths=[Path(__file__).parent] if args.reload else None,
        respawn_failed_workers=not args.reload,
        log_access=False,
    )
    server.serve()
    return 0


def _hand_to_workers(args: argparse.Namespace, settings: Settings) -> None:
    """Each worker loads its settings again (`create_app_from_environment`), from the environment
    it inherits: `--config`, `--host`, `--port` and `--workers` go there, or a worker would serve
    the default file and believe itself alone (and keep a metric cache the others never drop)."""
    if args.config:
        os.environ["OBSERVATORY_CONFIG"] = str(Path(args.config).resolve())
    server = settings.server
    os.environ.update(API_HOST=server.host, API_PORT=str(server.port), API_WORKERS=str(server.workers))


def exporter_setup(settings: Settings, ingest_key: str) -> str:
    """The one line of environment that points an OpenTelemetry SDK at this server."""
    wildcard = settings.server.host in ("0.0.0.0", "::", "127.0.0.1")  # noqa: S104 (compared, not bound)
    host = "localhost" if wildcard else settings.server.host
    return (
        f"OTEL_EXPORTER_OTLP_ENDPOINT=http://{host}:{settings.server.port} "
        f"OTEL_EXPORTER_OTLP_HEADERS=x-api-key={ingest_key} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
    )


async def _prepare_demo(settings: Settings, traces: int) -> None:
    from observatory_api.db.engine import migrated_owner_engine
    from observatory_api.demo.seed import database_is_empty

    print("observatory-api: migrating the database to the latest schema", flush=True)
    engine = await migrated_owner_engine(settings.database)
    try:
        if await database_is_empty(engine):
            print(
                f"observatory-api: first start: writing {traces:,} demo traces over the last 30 days "
                "(about a minute on 2 cores; later starts skip this)",
                flush=True,
            )
            await _run_seed(engine, settings, traces=traces, seed=42, days=30)
        else:
            print("observatory-api: the database already holds data; not seeding", flush=True)
        demo_key = await create_demo_key(engine, settings)
        print(f"observatory-api: demo API key (developer): {demo_key}", flush=True)
        print("observatory-api: send it as the X-API-Key header (shown once; the next --demo makes a new one)")
        if settings.ingest_enabled:
            ingest_key = await create_demo_key(engine, settings, role="ingest", name=DEMO_INGEST_KEY_NAME)
            print(f"observatory-api: send telemetry with: {exporter_setup(settings, ingest_key)}", flush=True)
    finally:
        await engine.dispose()


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.db.engine import database_url
    from observatory_api.db.migrate import upgrade_sql

    if args.sql:
        print(upgrade_sql(settings.database, database_url(settings.database)))
        return 0

    async def run() -> str:
        from observatory_api.db.engine import migrated_owner_engine
        from observatory_api.db.migrate import timescaledb_report

        engine = await migrated_owner_engine(settings.database)
        try:
            return await timescaledb_report(engine)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    print("observatory-api: the schema is at the latest revision")
    print(f"observatory-api: {report}")
    return 0


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    if args.traces < 1:
        print("observatory-api: --traces must be at least 1", file=sys.stderr)
        return 2
    try:
        end = _moment(args.end) if args.end else datetime.now(UTC)
    except ValueError as exc:
        print(f"observatory-api: --end: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        from observatory_api.db.engine import migrated_owner_engine
        from observatory_api.demo.seed import stored_traces

        engine = await migrated_owner_engine(settings.database)
        try:
            # Demo ids depend on the end time, so a second generation never overwrites or mixes
            # into the first; it would still double what the database holds: only when asked.
            already = await stored_traces(engine)
            if already and not args.append:
                print(
                    f"observatory-api: the database already holds {already:,} traces; seeding adds "
                    f"{args.traces:,} more beside them (new ids, another time window unless --end and "
                    "--seed repeat an earlier run). Pass --append to do so.",
                    file=sys.stderr,
                )
                return 1
            await _run_seed(engine, settings, traces=args.traces, seed=args.seed, days=args.days, end=end)
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (e.g. 2026-11-20T00:00:00Z)")
    return moment


async def _run_seed(
    engine: AsyncEngine, settings: Settings, *, traces: int, seed: int, days: int, end: datetime | None = None
) -> None:
    from observatory_api.demo.seed import seed_demo
    from observatory_api.startup import seeding_progress

    started = time.perf_counter()
    async with _publishing_writes(settings) as on_stored:
        with seeding_progress(traces) as progress:
            result = await seed_demo(
                engine, traces=traces, seed=seed, end=end, days=days, progress=progress, on_stored=on_stored
            )
    elapsed = time.perf_counter() - started
    print(
        f"observatory-api: seeded {result.traces:,} traces, {result.spans:,} spans, {result.logs:,} logs "
        f"in {elapsed:.1f} s ({result.spans / elapsed:,.0f} spans/s)",
        flush=True,
    )


@contextlib.asynccontextmanager
async def _publishing_writes(settings: Settings) -> AsyncIterator[Callable[[datetime, datetime], None] | None]:
    """The writer's `on_stored` for a command that writes spans: with Redis, the time ranges it
    touched reach the servers' metric caches (metrics/segment_sync.py); without, None."""
    from observatory_api.core.background import background_task
    from observatory_api.metrics.segment_cache import DEFAULT_TTL_SECONDS
    from observatory_api.metrics.segment_sync import SegmentPublisher, channel_name, new_origin
    from observatory_api.redis_client import open_redis

    connection = open_redis(settings.redis, timeout=2)
    if connection is None:
        yield None
        return
    publisher = SegmentPublisher(connection.client, channel_name(settings.redis.key_prefix), new_origin())
    try:
        async with background_task(publisher.run(), name="observatory-metric-cache-publisher"):
            yield publisher.stored
            if not await publisher.flush(PUBLISH_WAIT_SECONDS):
                print(
                    "observatory-api: warning: could not reach Redis to tell the servers' metric caches of "
                    f"the spans written; a running server's closed buckets may miss them for up to "
                    f"{DEFAULT_TTL_SECONDS:g} s",
                    file=sys.stderr,
                )
    finally:
        await connection.aclose()


def _rebuild_summaries(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.db.engine import migrated_owner_engine
    from observatory_api.storage.rebuild import rebuild_summaries

    def progress(what: str, done: int) -> None:
        print(f"\rrebuilding: {done:,} {what}", end="", file=sys.stderr, flush=True)

    async def run() -> None:
        engine = await migrated_owner_engine(settings.database)
        try:
            started = time.perf_counter()
            rebuilt = await rebuild_summaries(engine, progress=progress)
            print(file=sys.stderr)
            print(
                f"observatory-api: rebuilt {rebuilt.traces:,} trace and {rebuilt.sessions:,} session summaries "
                f"in {time.perf_counter() - started:.1f} s"
            )
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def _config_check(args: argparse.Namespace, settings: Settings) -> int:
    # `--production` was applied when the settings were loaded: every problem is reported at once.
    print(json.dumps(masked(settings), indent=2, sort_keys=True))
    print("observatory-api: configuration is valid", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
