"""TimescaleDB continuous aggregates (migration 0005), tested on plain PostgreSQL by emulation.

TimescaleDB cannot be installed here, so each test database gets just enough of it: a SQL
`time_bucket(interval, timestamptz)` (date_bin from 2000-01-03, TimescaleDB's default origin) and,
as plain views, the revision's own SELECTs. Against the rollup tables the real writer keeps, over
the shared dataset and spans on every histogram bin edge, this checks the SQL of the aggregates,
the query engine's switch to them, the writer's switch away from the rollup tables, and the
detection. Untested: the `WITH (timescaledb.continuous, ...)` clause and the policies' effect.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import TestClient
from sqlalchemy import delete, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.app import create_app
from observatory_api.db.capabilities import DatabaseCapabilities, detect_capabilities, reports_continuous_aggregates
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.migrate import upgrade_sql
from observatory_api.db.revisions import current_revision, head_revision
from observatory_api.db.tables import spans, traces
from observatory_api.demo.generator import generate
from observatory_api.demo.seed import seed_demo
from observatory_api.metrics import histogram
from observatory_api.metrics.continuous_aggregates import AGGREGATE_OF_ROLLUP, AGGREGATE_VIEWS, CONTINUOUS_AGGREGATES
from observatory_api.metrics.rollup_tables import GRAINS, HISTOGRAMS, MEASURES, ROLLUP_DIMENSIONS, ROLLUPS
from observatory_api.settings import DatabaseSettings, RateLimitSettings
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.conftest import _pg_url, auth_headers, make_settings, run_migration, scratch_database
from tests.dataset import DATASET_END, DATASET_SEED, DATASET_TRACES

# 0005 created the aggregates; 0008 recreated those with every dimension over `model_id` and
# `cost_source`, with 0005's SQL builders; 0014 added the overall hour and day ones: its
# `aggregates_definition()` is the current one.
REVISION_FILE = Path(__file__).resolve().parents[3] / "migrations" / "versions" / "0014_overall_hour_and_day_rollups.py"
VIEWS = tuple(AGGREGATE_OF_ROLLUP.values())
FLOAT_SUMS = {f"{measure}_sum" for measure, integer in MEASURES.items() if not integer}
TIME_BUCKET = (
    "CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
    "AS $$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$"
)
EDGE_START = DATASET_END - timedelta(days=3, minutes=7, seconds=30)


def load_revision() -> ModuleType:
    spec = importlib.util.spec_from_file_location("revision_0014", REVISION_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.aggregates_definition()  # type: ignore[no-any-return]


revision = load_revision()


def edge_spans() -> list[SpanRecord]:
    """Spans on both sides of every histogram bin edge, with NULLs and every case of the speed."""
    durations = [0.0, 0.5, math.nextafter(1.0, 0.0), 1e9]
    for bound in revision.bin_lower_bounds()[1:]:
        durations += [bound, math.nextafter(bound, 0.0)]
    records = []
    for i, duration in enumerate(durations):
        llm = i % 5 != 4
        start = EDGE_START + timedelta(seconds=37 * i, microseconds=i)
        records.append(
            SpanRecord(
                trace_id=f"{i // 40 + 1:032x}",
                span_id=f"{i + 1:016x}",
                service_name="edge-service",
                name="edge",
                kind="llm" if llm else "tool",
                start_time=start,
                end_time=start + timedelta(milliseconds=duration if duration < 1e8 else 1),
                duration_ms=duration,
                provider="openai" if llm and i % 7 else None,
                model="gpt-4o-mini" if llm and i % 7 else None,
                input_tokens=(i * 13) % 500 if llm else None,
                output_tokens=(None, 0, 3, 250)[i % 4] if llm else None,
                total_tokens=(i * 13) % 500 + 3 if llm else None,
                cost_usd=i * 1.3e-6 if llm and i % 3 else None,
                time_to_first_token_ms=durations[-1 - i] if i % 6 != 5 else None,
                status=("ok", "error", "unset")[i % 3],
                finish_reason="stop" if i % 6 else None,
                environment="production" if i % 4 else None,
            )
        )
    return records


async def emulate_timescaledb(conn: AsyncConnection) -> None:
    """TimescaleDB's `time_bucket`, and the revision's aggregates as plain views."""
    await conn.exec_driver_sql(TIME_BUCKET)
    for name in VIEWS:
        await conn.exec_driver_sql(f"CREATE VIEW {name} AS {revision.aggregate_select(name)}")


@pytest_asyncio.fixture(scope="module")
async def emulated_template(pg_template: str) -> AsyncIterator[str]:
    """A database at head written by the real TelemetryWriter (the shared dataset, as the seeded
    databases of conftest, plus `edge_spans`), with TimescaleDB emulated; cloned by each test."""
    async with scratch_database(pg_template, label="cagg_") as name:
        settings = DatabaseSettings(url=_pg_url(name))
        engine = create_engine(settings, database_url(settings))
        try:
            await seed_demo(engine, traces=DATASET_TRACES, seed=DATASET_SEED, end=DATASET_END, days=30)
            assert await TelemetryWriter(engine).write_spans(edge_spans()) == len(edge_spans())
            async with engine.begin() as conn:
                await emulate_timescaledb(conn)
        finally:
            await engine.dispose()
        yield name


@pytest_asyncio.fixture
async def emulated_database(emulated_template: str) -> AsyncIterator[DatabaseSettings]:
    async with scratch_database(emulated_template) as name:
        yield DatabaseSettings(url=_pg_url(name))


@pytest_asyncio.fixture
async def emulated_engine(emulated_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(emulated_database, database_url(emulated_database))
    yield engine
    await engine.dispose()


# --------------------------------------------------------------------------- comparing rows


async def keyed_rows(conn: AsyncConnection, table: Any) -> dict[tuple, dict[str, Any]]:
    """The rows of a rollup table or aggregate by (bucket, dimension values), without dims_key."""
    dimensions = [column for column in ROLLUP_DIMENSIONS.values() if column in table.c]
    found: dict[tuple, dict[str, Any]] = {}
    for row in (await conn.execute(select(table))).mappings():
        key = (row["bucket"], *(row[column] for column in dimensions))
        assert key not in found, key
        found[key] = {column: value for column, value in row.items() if column != "dims_key"}
    return found


def assert_same_rows(found: dict[tuple, dict[str, Any]], wanted: dict[tuple, dict[str, Any]]) -> None:
    assert wanted, "no rows to compare"
    assert found.keys() == wanted.keys()
    for key, row in wanted.items():
        other = found[key]
        assert other.keys() == row.keys()
        for column, value in row.items():
            if column in FLOAT_SUMS:
                assert math.isclose(other[column], value, rel_tol=1e-9, abs_tol=1e-12), (key, column)
            else:
                assert other[column] == value, (key, column, other[column], value)


async def assert_aggregates_match_rollups(conn: AsyncConnection, aggregate_of: dict[str, Any]) -> None:
    for rollup in ROLLUPS:
        wanted = await keyed_rows(conn, rollup.table)
        assert_same_rows(await keyed_rows(conn, aggregate_of[rollup.table.name]), wanted)


# --------------------------------------------------------------------------- the SQL of the aggregates


def test_the_revisions_frozen_constants_and_bin_bounds_are_the_writers() -> None:
    assert revision.HISTOGRAM_ALPHA == histogram.ALPHA
    assert revision.HISTOGRAM_BINS == histogram.BINS
    assert revision.MEASURES == MEASURES
    assert revision.HISTOGRAM_PREFIXES == HISTOGRAMS
    widths = {"1 minute": GRAINS["minute"], "1 hour": GRAINS["hour"], "1 day": GRAINS["day"]}
    for rollup in ROLLUPS:
        width, dimensions = revision.AGGREGATES[AGGREGATE_OF_ROLLUP[rollup.table.name]]
        assert (widths[width], dimensions) == (rollup.seconds, rollup.dimension_columns)
    bounds = revision.bin_lower_bounds()
    assert len(bounds) == histogram.BINS
    for index in range(1, histogram.BINS):
        # The least value of each bin, as the writer's own bin_of decides it.
        assert histogram.bin_of(bounds[index]) == index
        assert histogram.bin_of(math.nextafter(bounds[index], 0.0)) == index - 1


async def test_each_aggregate_has_exactly_the_rows_the_writer_put_in_its_rollup_table(
    emulated_engine: AsyncEngine,
) -> None:
    async with emulated_engine.connect() as conn:
        # The writer stored every span in every rollup table (seed_demo writes through it).
        stored = await conn.scalar(select(func.count()).select_from(spans))
        for rollup in ROLLUPS:
            assert await conn.scalar(select(func.sum(rollup.table.c.span_count))) == stored
            columns = await conn.scalars(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = :name"),
                {"name": AGGREGATE_OF_ROLLUP[rollup.table.name]},
            )
            assert set(columns) == {c.name for c in rollup.table.columns} - {"dims_key"}
        await assert_aggregates_match_rollups(conn, CONTINUOUS_AGGREGATES)
        # The data reaches every case the SQL must reproduce.
        minute = ROLLUPS[0].table
        for prefix in ("duration", "ttft"):
            bins = [minute.c[f"{prefix}_h{i:03d}"] for i in range(histogram.BINS)]
            used = (await conn.execute(select(*(func.count(column) for column in bins)))).one()
            assert all(used), f"a {prefix} bin is never used"
        cases = (
            await conn.execute(
                select(
                    func.sum(minute.c.output_tokens_per_second_count),
                    func.sum(minute.c.span_count - minute.c.output_tokens_per_second_count),
                    func.sum(minute.c.span_count - minute.c.time_to_first_token_ms_count),
                    func.sum(minute.c.span_count - minute.c.cost_usd_count),
                    func.count().filter(minute.c.model_id.is_(None)),
                    func.count().filter(minute.c.finish_reason.is_(None)),
                )
            )
        ).one()
        assert all(cases), cases


async def test_the_revisions_timescaledb_statements_run_with_only_the_timescaledb_options_left_out(
    emulated_engine: AsyncEngine,
) -> None:
    """The PL/pgSQL the upgrade runs on TimescaleDB, as plain materialized views and a recording
    `add_continuous_aggregate_policy`, in a schema of its own, rolled back at the end."""
    statements = revision.timescaledb_statements(89)
    assert statements.count(revision.CONTINUOUS_OPTIONS) == len(VIEWS)
    async with emulated_engine.connect() as conn:
        transaction = await conn.begin()
        await conn.exec_driver_sql("CREATE SCHEMA ddl_check")
        await conn.exec_driver_sql("SET LOCAL search_path = ddl_check, public")
        await conn.exec_driver_sql(
            "CREATE TABLE policies (aggregate regclass, start_offset interval, end_offset interval, "
            "schedule_interval interval, if_not_exists boolean)"
        )
        await conn.exec_driver_sql(
            "CREATE FUNCTION add_continuous_aggregate_policy(continuous_aggregate regclass, "
            "start_offset interval, end_offset interval, schedule_interval interval, "
            "if_not_exists boolean DEFAULT false) RETURNS integer LANGUAGE sql "
            "AS $$ INSERT INTO ddl_check.policies VALUES ($1, $2, $3, $4, $5) RETURNING 1 $$"
        )
        plain = statements.replace(revision.CONTINUOUS_OPTIONS, "")
        await conn.exec_driver_sql(f"DO $$\nBEGIN\n{plain}\nEND\n$$")
        created = await conn.scalars(text("SELECT matviewname FROM pg_matviews WHERE schemaname = 'ddl_check'"))
        assert set(created) == set(VIEWS)
        for name in VIEWS:
            await conn.exec_driver_sql(f"REFRESH MATERIALIZED VIEW ddl_check.{name}")
        await assert_aggregates_match_rollups(conn, CONTINUOUS_AGGREGATES)  # read through the search path
        policies = (
            await conn.execute(
                text(
                    "SELECT aggregate::text, extract(epoch FROM start_offset), extract(epoch FROM end_offset), "
                    "extract(epoch FROM schedule_interval), if_not_exists FROM policies"
                )
            )
        ).all()
        await transaction.rollback()
    widths = {name: rollup.seconds for rollup in ROLLUPS for name in [AGGREGATE_OF_ROLLUP[rollup.table.name]]}
    assert sorted(p[0] for p in policies) == sorted(VIEWS)
    for name, start, end, schedule, if_not_exists in policies:
        assert start == 89 * 86_400 and if_not_exists
        # At least two buckets between the offsets (TimescaleDB requires it); a refresh at least
        # once per bucket, and the newest buckets left to real-time aggregation.
        assert start - end >= 2 * widths[name]
        assert 0 < schedule <= widths[name] and end > 0


# --------------------------------------------------------------------------- the query engine


BODIES: list[dict[str, Any]] = [
    {
        "from": (DATASET_END - timedelta(days=30, hours=11, minutes=7, seconds=30)).isoformat(),
        "to": (DATASET_END - timedelta(minutes=13)).isoformat(),
        "metrics": [
            {"id": "request_count"},
            {"id": "error_rate"},
            {"id": "latency_ms", "aggregation": "p95"},
            {"id": "latency_ms", "aggregation": "avg"},
            {"id": "time_to_first_token_ms", "aggregation": "p50"},
            {"id": "cost_usd", "aggregation": "sum"},
            {"id": "input_tokens", "aggregation": "max"},
            {"id": "output_tokens_per_second", "aggregation": "avg"},
        ],
    },
    {
        "from": (DATASET_END - timedelta(days=20)).isoformat(),
        "to": DATASET_END.isoformat(),
        "interval": "day",
        "group_by": ["provider", "model"],
        "filter": {"field": "kind", "op": "eq", "value": "llm"},
        "metrics": [{"id": "request_count"}, {"id": "latency_ms", "aggregation": "p99"}],
    },
    {
        "from": (EDGE_START - timedelta(hours=30, minutes=4)).isoformat(),
        "to": (EDGE_START + timedelta(hours=6, minutes=3)).isoformat(),
        "interval": "hour",
        "group_by": ["status"],
        "filter": {"field": "environment", "op": "eq", "value": "production"},
        "metrics": [{"id": "output_tokens", "aggregation": "sum"}, {"id": "latency_ms", "aggregation": "min"}],
    },
    {
        "from": (EDGE_START - timedelta(hours=2)).isoformat(),
        "to": (EDGE_START + timedelta(hours=4)).isoformat(),
        "interval": "15m",
        "metrics": [{"id": "request_count"}, {"id": "time_to_first_token_ms", "aggregation": "max"}],
    },
]


def close_answers(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return (
            isinstance(found, dict)
            and found.keys() == wanted.keys()
            and all(close_answers(found[k], wanted[k]) for k in wanted)
        )
    if isinstance(wanted, list):
        return isinstance(found, list) and len(found) == len(wanted) and all(map(close_answers, found, wanted))
    if isinstance(wanted, float) and isinstance(found, float):
        return math.isclose(found, wanted, rel_tol=1e-9, abs_tol=1e-12)
    return found == wanted


def ask(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/metrics/query", json={**body, "source": "rollup"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["source"].startswith("rollup_")
    return answer


def with_aggregates(client: TestClient, present: bool) -> None:
    """The app's resources, as the lifespan would have built them if it had found the aggregates."""
    resources = client.app.state.resources
    capabilities = replace(resources.capabilities, continuous_aggregates=present)
    client.app.state.resources = replace(resources, capabilities=capabilities)


async def test_metric_queries_read_the_aggregates_when_the_database_has_them(
    emulated_database: DatabaseSettings,
) -> None:
    roles = {"admin": 1_000_000, "developer": 1_000_000, "viewer": 1_000_000}
    settings = make_settings(emulated_database, rate_limit=RateLimitSettings(roles=roles))
    owner = create_engine(emulated_database, database_url(emulated_database))
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            client.headers.update(auth_headers(settings, "developer"))
            resources = client.app.state.resources
            assert resources.capabilities == DatabaseCapabilities("postgresql")  # the rollup tables
            statements: list[str] = []
            event.listen(resources.read_engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
            from_rollups = [ask(client, body) for body in BODIES]
            assert statements and not any("metric_cagg_" in s for s in statements)
            assert any(a["totals"] or a["series"] for a in from_rollups)

            with_aggregates(client, True)
            statements.clear()
            from_aggregates = [ask(client, body) for body in BODIES]
            assert close_answers(from_aggregates, from_rollups)
            read = " ".join(statements)
            assert "metric_rollup_" not in read
            assert all(name in read for name in VIEWS), "every grain and the overall minute view are read"

            # With the rollup tables emptied, only the aggregates still know the answers.
            async with owner.begin() as conn:
                for rollup in ROLLUPS:
                    await conn.execute(delete(rollup.table))
            assert close_answers([ask(client, body) for body in BODIES], from_rollups)
            with_aggregates(client, False)
            emptied = ask(client, BODIES[0])
            assert emptied["totals"]["request_count_count"] != from_rollups[0]["totals"]["request_count_count"]
    finally:
        await owner.dispose()


# --------------------------------------------------------------------------- the writer


async def rollup_snapshot(engine: AsyncEngine) -> list[list[tuple]]:
    async with engine.connect() as conn:
        return [sorted(tuple(row) for row in await conn.execute(select(r.table))) for r in ROLLUPS]


def new_spans(seed: int) -> list[SpanRecord]:
    end = DATASET_END - timedelta(days=1, minutes=3)
    return [span for batch, _ in generate(traces=25, seed=seed, end=end, days=1) for span in batch]


async def test_the_writer_leaves_the_rollup_tables_to_the_aggregates_when_present(emulated_engine: AsyncEngine) -> None:
    async def count(table: Any) -> int:
        async with emulated_engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)))

    before = await rollup_snapshot(emulated_engine)
    spans_before, traces_before = await count(spans), await count(traces)
    records = new_spans(seed=41)
    with_aggregates = DatabaseCapabilities("timescaledb", continuous_aggregates=True)
    assert await TelemetryWriter(emulated_engine, capabilities=with_aggregates).write_spans(records) == len(records)
    assert await rollup_snapshot(emulated_engine) == before
    assert await count(spans) == spans_before + len(records)
    trace_ids = {span.trace_id for span in records}
    assert await count(traces) == traces_before + len(trace_ids)
    async with emulated_engine.connect() as conn:
        summed = await conn.scalar(select(func.sum(traces.c.span_count)).where(traces.c.trace_id.in_(trace_ids)))
        assert summed == len(records)
        for view in CONTINUOUS_AGGREGATES.values():  # the aggregates count them at once
            assert await conn.scalar(select(func.sum(view.c.span_count))) == spans_before + len(records)

    # A writer told of no aggregates adds to the rollup tables again.
    more = new_spans(seed=42)
    without = DatabaseCapabilities("timescaledb", continuous_aggregates=False)
    assert await TelemetryWriter(emulated_engine, capabilities=without).write_spans(more) == len(more)
    after = await rollup_snapshot(emulated_engine)
    assert all(rows != old for rows, old in zip(after, before, strict=True))


# --------------------------------------------------------------------------- migration and detection


@pytest.mark.usefixtures("_sqlite_template_ready")
async def test_the_revision_does_nothing_on_plain_postgresql_and_sqlite(
    pg_template: str, sqlite_template: Path, emulated_database: DatabaseSettings, emulated_engine: AsyncEngine
) -> None:
    # The templates are at head, which includes 0005 (0006, token revocation, creates no views).
    head = head_revision()
    assert head is not None and head >= "0005"
    names = "SELECT relname FROM pg_class WHERE relname LIKE 'metric_cagg%'"
    settings = DatabaseSettings(url=_pg_url(pg_template))
    engine = create_engine(settings, database_url(settings))
    try:
        async with engine.connect() as conn:
            assert await current_revision(conn) == head
            assert (await conn.scalars(text(names))).all() == []
    finally:
        await engine.dispose()
    sqlite = DatabaseSettings(sqlite_path=str(sqlite_template))
    engine = create_engine(sqlite, database_url(sqlite))
    try:
        async with engine.connect() as conn:
            assert await current_revision(conn) == head
            found = await conn.scalars(text("SELECT name FROM sqlite_master WHERE name LIKE 'metric_cagg%'"))
            assert found.all() == []
    finally:
        await engine.dispose()
    # Down and up again on plain PostgreSQL: nothing is created. (The emulation's views go first:
    # 0008's downgrade drops the `spans` columns they read.)
    async with emulated_engine.begin() as conn:
        for view in VIEWS:
            await conn.exec_driver_sql(f"DROP VIEW {view}")
    await run_migration(emulated_engine, emulated_database, ("downgrade", "0004"), ("upgrade", "head"))
    async with emulated_engine.connect() as conn:
        assert (await conn.scalars(text(names))).all() == []
    # What `migrate --sql` prints: the aggregates only inside the TimescaleDB branch, nothing on SQLite.
    pg_sql = upgrade_sql(settings, make_url("postgresql://u:p@h:5432/d"))
    branch = pg_sql[pg_sql.index("-- Running upgrade 0004 -> 0005") :]
    assert branch.index("IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')") < branch.index(
        "CREATE MATERIALIZED VIEW metric_cagg_minute\n"
    )
    assert "metric_cagg" not in upgrade_sql(sqlite, database_url(sqlite))


@pytest.mark.usefixtures("_sqlite_template_ready")
async def test_detection_is_false_on_plain_postgresql_and_sqlite(
    emulated_engine: AsyncEngine, sqlite_template: Path, caplog: pytest.LogCaptureFixture
) -> None:
    statements: list[str] = []
    event.listen(emulated_engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    # Without TimescaleDB the catalogue is not even asked (the views of this database are plain).
    found = await detect_capabilities(emulated_engine, continuous_aggregates=AGGREGATE_VIEWS)
    assert found == DatabaseCapabilities("postgresql", continuous_aggregates=False)
    assert not any("timescaledb_information" in s for s in statements)
    # Asked anyway, plain PostgreSQL has no timescaledb_information: a warning, no error.
    with caplog.at_level(logging.WARNING, logger="observatory_api.db"):
        assert await reports_continuous_aggregates(emulated_engine, AGGREGATE_VIEWS) is False
    assert any("timescaledb_information" in s for s in statements)
    assert "could not list the continuous aggregates" in caplog.text
    sqlite = DatabaseSettings(sqlite_path=str(sqlite_template))
    engine = create_engine(sqlite, database_url(sqlite))
    try:
        found = await detect_capabilities(engine, continuous_aggregates=AGGREGATE_VIEWS)
        assert found == DatabaseCapabilities("sqlite", continuous_aggregates=False)
    finally:
        await engine.dispose()


async def test_detection_reads_what_timescaledb_reports(
    emulated_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """TimescaleDB's catalogue view emulated over pg_class: all four aggregates, then three."""
    async with emulated_engine.begin() as conn:
        await conn.exec_driver_sql("CREATE SCHEMA timescaledb_information")
        await conn.exec_driver_sql(
            "CREATE VIEW timescaledb_information.continuous_aggregates AS "
            "SELECT n.nspname AS view_schema, c.relname AS view_name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE 'metric_cagg_%'"
        )
    assert await reports_continuous_aggregates(emulated_engine, AGGREGATE_VIEWS) is True
    async with emulated_engine.begin() as conn:
        await conn.exec_driver_sql("DROP VIEW metric_cagg_hour")
    with caplog.at_level(logging.WARNING, logger="observatory_api.db"):
        assert await reports_continuous_aggregates(emulated_engine, AGGREGATE_VIEWS) is False
    assert "missing (metric_cagg_hour)" in caplog.text
