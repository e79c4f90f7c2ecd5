"""Canonical models and cost sources: `spans.model_id`, `spans.cost_source`, unpriced call counts.

`spans.model` keeps the model as sent; `spans.model_id` is the canonical model
(`<maker>/<family>`, core.canonical_models) that every model view, filter, group-by, rollup and price
uses, and `spans.provider` is normalised to the GenAI conventions' vocabulary. `cost_source` says
where `cost_usd` came from (storage.costs). `traces.unpriced_calls` and `sessions.unpriced_calls`
count the successful model calls without a cost. The metric rollups group by `model_id` (instead
of `model`) and by `cost_source`.

Existing rows are migrated: each distinct (provider, model) pair is canonicalised once and its rows
updated; spans without a cost (or with an instrumentation's 0) that report tokens are priced as the
writer now prices them (catalogue first, then genai-prices), the others without a cost get
`cost_source = 'none'`, and a stored cost keeps a NULL source (where it came from was not
recorded). The rollup tables are emptied and rebuilt from `spans`, the trace and session summaries
recomputed; on TimescaleDB the continuous aggregates with every dimension are recreated.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ROLLUPS_WITH_EVERY_DIMENSION = ("metric_rollup_minute", "metric_rollup_hour", "metric_rollup_day")
AGGREGATES_WITH_EVERY_DIMENSION = ("metric_cagg_minute", "metric_cagg_hour", "metric_cagg_day")
DIMENSIONS = (
    "provider",
    "model_id",
    "service_name",
    "environment",
    "status",
    "kind",
    "finish_reason",
    "cost_source",
)
OLD_DIMENSIONS = ("provider", "model", "service_name", "environment", "status", "kind", "finish_reason")
BATCH = 5000
SUMMARY_CHUNK = 1000


def upgrade() -> None:
    op.add_column("spans", sa.Column("model_id", sa.String(300)))
    op.add_column("spans", sa.Column("cost_source", sa.String(16)))
    op.drop_index("ix_spans_model_start_time", table_name="spans")
    op.create_index("ix_spans_model_id_start_time", "spans", ["model_id", "start_time"])
    for table in ("traces", "sessions"):
        op.add_column(table, sa.Column("unpriced_calls", sa.Integer(), nullable=False, server_default="0"))
    _drop_aggregates()
    for name in ROLLUPS_WITH_EVERY_DIMENSION:
        op.execute(f"DELETE FROM {name}")
        op.drop_column(name, "model")
        op.add_column(name, sa.Column("model_id", sa.String(300)))
        op.add_column(name, sa.Column("cost_source", sa.String(16)))
    if not context.is_offline_mode():
        _canonicalise_spans()
        _price_spans()
        _rebuild_rollups()
        _rebuild_summaries()
    _create_aggregates(DIMENSIONS)


def downgrade() -> None:
    _drop_aggregates()
    for name in ROLLUPS_WITH_EVERY_DIMENSION:
        # Emptied: rebuild them with a downgrade to 0002 and an upgrade (0003 backfills them).
        op.execute(f"DELETE FROM {name}")
        op.drop_column(name, "cost_source")
        op.drop_column(name, "model_id")
        op.add_column(name, sa.Column("model", sa.String(200)))
    for table in ("sessions", "traces"):
        op.drop_column(table, "unpriced_calls")
    op.drop_index("ix_spans_model_id_start_time", table_name="spans")
    op.create_index("ix_spans_model_start_time", "spans", ["model", "start_time"])
    op.drop_column("spans", "cost_source")
    op.drop_column("spans", "model_id")
    _create_aggregates(OLD_DIMENSIONS)


# --------------------------------------------------------------------------- spans


def _canonicalise_spans() -> None:
    from observatory_api.core.canonical_models import canonical_model

    bind = op.get_bind()
    spans = sa.table("spans", sa.column("provider"), sa.column("model"), sa.column("model_id"))
    pairs = bind.execute(sa.select(spans.c.provider, spans.c.model).distinct()).all()
    for provider, model in pairs:
        canonical = canonical_model(provider, model)
        same_provider = spans.c.provider.is_(None) if provider is None else spans.c.provider == provider
        same_model = spans.c.model.is_(None) if model is None else spans.c.model == model
        if canonical.provider == provider and canonical.model_id is None:
            continue
        bind.execute(
            sa.update(spans)
            .where(same_provider, same_model)
            .values(provider=canonical.provider, model_id=canonical.model_id)
        )


def _price_spans() -> None:
    """Price the spans the writer would price now; the rest without a cost get source 'none'."""
    from observatory_api.core.records import SpanRecord
    from observatory_api.db.tables import model_prices, models, spans
    from observatory_api.models.pricing import ModelPrices, PriceHistory, PricePeriod
    from observatory_api.storage.costs import CostFiller

    bind = op.get_bind()
    periods: dict[tuple[str, str], list[PricePeriod]] = {}
    rows = bind.execute(sa.select(models.c.provider, models.c.name, model_prices).join(model_prices)).mappings()
    for row in rows:
        period = PricePeriod(effective_from=row["effective_from"], prices=ModelPrices.from_row(row))
        periods.setdefault((row["provider"], row["name"]), []).append(period)
    filler = CostFiller()
    filler._history = PriceHistory(periods)
    filler._loaded_at = float("inf")
    s = spans.c
    fields = (
        "trace_id", "span_id", "start_time", "kind", "provider", "model", "input_tokens", "output_tokens",
        "cache_read_input_tokens", "cache_creation_input_tokens", "reasoning_output_tokens", "cost_usd",
    )  # fmt: skip
    candidates = sa.select(*(s[f] for f in fields)).where(
        s.model.is_not(None),
        sa.or_(s.cost_usd.is_(None), s.cost_usd == 0),
        sa.or_(s.input_tokens.is_not(None), s.output_tokens.is_not(None)),
    )
    update = (
        sa.update(spans)
        .where(
            s.trace_id == sa.bindparam("k_trace"),
            s.span_id == sa.bindparam("k_span"),
            s.start_time == sa.bindparam("k_start"),
        )
        .values(cost_usd=sa.bindparam("cost"), cost_source=sa.bindparam("source"))
    )
    # Read all first: SQLite cannot update a table while a cursor over it is open.
    found = bind.execute(candidates).all()
    for start in range(0, len(found), BATCH):
        changes = []
        for row in found[start : start + BATCH]:
            values = row._asdict()
            record = SpanRecord(service_name="", name="", end_time=values["start_time"], duration_ms=0.0, **values)
            (priced,) = asyncio_free_fill(filler, record)
            if priced.cost_source != "none":
                changes.append(
                    {
                        "k_trace": row.trace_id,
                        "k_span": row.span_id,
                        "k_start": row.start_time,
                        "cost": priced.cost_usd,
                        "source": priced.cost_source,
                    }
                )
        if changes:
            bind.execute(update, changes)
    bind.execute(sa.update(spans).where(s.cost_usd.is_(None), s.cost_source.is_(None)).values(cost_source="none"))


def asyncio_free_fill(filler: Any, record: Any) -> list[Any]:
    # CostFiller.fill is a coroutine only to reload the history, which is given here: run it inline.
    coroutine = filler.fill(None, [record])
    try:
        coroutine.send(None)
    except StopIteration as done:
        return list(done.value)
    raise RuntimeError("pricing awaited unexpectedly")


# --------------------------------------------------------------------------- rollups, summaries


def _rebuild_rollups() -> None:
    """Add every span into the emptied rollup tables, with the writer's own aggregation code."""
    from observatory_api.db.tables import spans
    from observatory_api.db.write_sql import dialect_insert
    from observatory_api.metrics.rollup_tables import ROLLUPS
    from observatory_api.metrics.rollups import additive_updates, all_rollup_rows, contribution

    bind = op.get_bind()
    rollups = [rollup for rollup in ROLLUPS if rollup.table.name in ROLLUPS_WITH_EVERY_DIMENSION]
    # Read all first: SQLite cannot write while a cursor over `spans` is open, PostgreSQL no
    # later ALTER TABLE while a server-side cursor is.
    found = bind.execute(sa.select(*spans.c)).all()
    for partition in (found[start : start + BATCH] for start in range(0, len(found), BATCH)):
        parts = [contribution(tuple(row)) for row in partition]
        for rollup, rows in all_rollup_rows(parts):
            if rollup not in rollups:
                continue
            table = rollup.table
            names = [column.name for column in table.columns]
            dicts = [dict(zip(names, row, strict=True)) for row in rows]
            for start in range(0, len(dicts), 50):  # ~370 parameters a row: under asyncpg's limit
                insert = dialect_insert(bind.dialect.name, table).values(dicts[start : start + 50])
                bind.execute(
                    insert.on_conflict_do_update(
                        index_elements=["bucket", "dims_key"], set_=additive_updates(table, insert.excluded)
                    )
                )


def _rebuild_summaries() -> None:
    from observatory_api.db.tables import spans, traces
    from observatory_api.storage.summaries import IDS, refresh_sessions, refresh_traces

    # Today's summary statements write every column of today's `traces`: the revisions before
    # this one must have created them all (context_bits comes first, in 0007, for this reason).
    bind = op.get_bind()
    dialect_name = bind.dialect.name
    trace_ids = list(bind.scalars(sa.select(spans.c.trace_id).distinct()))
    for start in range(0, len(trace_ids), SUMMARY_CHUNK):
        bind.execute(refresh_traces(dialect_name), {IDS: trace_ids[start : start + SUMMARY_CHUNK]})
    named = sa.select(traces.c.session_id).distinct().where(traces.c.session_id.is_not(None))
    session_ids = list(bind.scalars(named))
    for start in range(0, len(session_ids), SUMMARY_CHUNK):
        bind.execute(refresh_sessions(dialect_name), {IDS: session_ids[start : start + SUMMARY_CHUNK]})


# --------------------------------------------------------------------------- TimescaleDB


def aggregates_definition(dimensions: tuple[str, ...] = DIMENSIONS) -> Any:
    """Revision 0005's module (its SQL builders) with the aggregates of every dimension over
    `dimensions`: the continuous aggregates as they are after this revision (tests read it too)."""
    path = Path(__file__).with_name("0005_metric_continuous_aggregates.py")
    spec = importlib.util.spec_from_file_location("_revision_0005", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ALL_DIMENSIONS = dimensions
    module.AGGREGATES = {
        name: (width, dimensions if name in AGGREGATES_WITH_EVERY_DIMENSION else kept)
        for name, (width, kept) in module.AGGREGATES.items()
    }
    return module


# Where 0005 created its aggregates.
_AGGREGATES_MADE = (
    "EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates"
    " WHERE view_schema = current_schema() AND view_name = 'metric_cagg_minute_overall')"
)


def _drop_aggregates() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    from observatory_api.db.timescaledb_ddl import retried_while_jobs_race, when_timescaledb

    drops = "\n".join(f"DROP MATERIALIZED VIEW IF EXISTS {name};" for name in AGGREGATES_WITH_EVERY_DIMENSION)
    op.execute(when_timescaledb(retried_while_jobs_race(drops), only_if=_AGGREGATES_MADE))


def _create_aggregates(dimensions: tuple[str, ...]) -> None:
    """The aggregates with every dimension, as 0005 creates them, over `dimensions`; only where
    0005 created its aggregates (their `minute_overall` one is left as it is)."""
    if op.get_context().dialect.name != "postgresql":
        return
    definition = aggregates_definition(dimensions)
    definition.AGGREGATES = {name: definition.AGGREGATES[name] for name in AGGREGATES_WITH_EVERY_DIMENSION}
    from observatory_api.db.timescaledb_ddl import when_timescaledb

    statements = definition.timescaledb_statements(definition._policy_start_days())
    op.execute(when_timescaledb(statements, only_if=_AGGREGATES_MADE))
