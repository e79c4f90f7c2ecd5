"""Where costs come from, on SQLite and PostgreSQL: the catalogue before genai-prices, an
instrumentation's positive cost kept and its 0 re-priced, unknown prices left NULL and counted as
unpriced in the trace and session summaries and the metrics, and migration 0008's backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.app import create_app
from observatory_api.core.canonical_models import canonical_model
from observatory_api.db.tables import sessions, spans, traces
from observatory_api.metrics.rollup_tables import metric_rollup_hour as metric_rollup_hour_table
from observatory_api.models.catalogue_data import STARTER_MODELS
from observatory_api.models.price_data import genai_price
from observatory_api.models.prices import record_price
from observatory_api.models.pricing import ModelPrices, price_usage
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.conftest import auth_headers, make_settings, run_migration

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
CATALOGUE = {m["id"]: ModelPrices.from_row(m) for m in STARTER_MODELS}
TRACE = "c" * 32
SESSION = "session-costs"
_ids = count(1)


def call(
    provider: str | None, model: str | None, *, cost: float | None = None, tokens: bool = True, status: str = "ok"
) -> SpanRecord:
    n = next(_ids)
    return SpanRecord(
        trace_id=TRACE,
        span_id=f"{n:016x}",
        parent_span_id="f" * 16,
        service_name="costs-test",
        name="chat",
        kind="llm",
        start_time=NOW + timedelta(seconds=n),
        end_time=NOW + timedelta(seconds=n, milliseconds=500),
        duration_ms=500.0,
        provider=provider,
        model=model,
        input_tokens=1_000 if tokens else None,
        output_tokens=200 if tokens else None,
        cost_usd=cost,
        status=status,  # type: ignore[arg-type]
        session_id=SESSION,
    )


def root() -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE,
        span_id="f" * 16,
        service_name="costs-test",
        name="agent",
        kind="agent",
        start_time=NOW,
        end_time=NOW + timedelta(minutes=1),
        duration_ms=60_000.0,
        status="ok",
        session_id=SESSION,
    )


def list_price(model_id: str) -> float:
    return price_usage(CATALOGUE[model_id], input_tokens=1_000, output_tokens=200)


def genai_list_price(provider: str, model: str) -> float:
    canonical = canonical_model(provider, model)
    assert canonical.price_provider is not None and canonical.price_model is not None
    found = genai_price(
        canonical.price_provider, canonical.price_model, when=NOW, input_tokens=1_000, output_tokens=200
    )
    assert found is not None
    return found


async def stored(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(spans))).mappings().all()
    return {row["span_id"]: dict(row) for row in rows}


async def test_each_cost_has_its_source_and_unknown_prices_stay_unpriced(
    migrated_engine: AsyncEngine, migrated_database: DatabaseSettings
) -> None:
    catalogue = call("openai", "gpt-4o-mini-2024-07-18")  # the catalogue has gpt-4o-mini
    library = call("anthropic", "claude-sonnet-4-5-20250929")  # only genai-prices knows Claude 4.5
    reported = call("openai", "gpt-4o", cost=0.25)  # an instrumentation's own cost
    zero = call("OpenAI", "gpt-4o", cost=0.0)  # OpenLIT's 0 for a model its list lacks
    zero_unknown = call("acme", "house-model", cost=0.0)  # a 0 nothing can replace
    unknown = call("acme", "house-model")  # no price anywhere
    no_usage = call("openai", "gpt-4o-mini", tokens=False)  # a stream without usage
    failed = call("openai", "gpt-4o-mini", tokens=False, status="error")  # not billed
    await TelemetryWriter(migrated_engine).write_spans(
        [root(), catalogue, library, reported, zero, zero_unknown, unknown, no_usage, failed]
    )
    rows = await stored(migrated_engine)

    def source(record: SpanRecord) -> tuple[float | None, str | None]:
        row = rows[record.span_id]
        return row["cost_usd"], row["cost_source"]

    assert source(catalogue) == (pytest.approx(list_price("openai/gpt-4o-mini")), "catalogue")
    assert source(library) == (pytest.approx(genai_list_price("anthropic", "claude-sonnet-4-5")), "genai-prices")
    assert source(reported) == (0.25, "instrumentation")
    assert source(zero) == (pytest.approx(list_price("openai/gpt-4o")), "catalogue")
    assert source(zero_unknown) == (0.0, "instrumentation")
    assert source(unknown) == (None, "none")
    assert source(no_usage) == (None, "none")
    assert source(failed) == (None, "none")
    assert rows[catalogue.span_id]["model"] == "gpt-4o-mini-2024-07-18"  # kept as sent
    assert rows[catalogue.span_id]["model_id"] == rows[failed.span_id]["model_id"] == "openai/gpt-4o-mini"
    assert rows[zero.span_id]["provider"] == "openai"

    # Unpriced: the successful calls without a cost (unknown, no_usage); the failed one is not billed.
    async with migrated_engine.connect() as conn:
        trace = (await conn.execute(select(traces).where(traces.c.trace_id == TRACE))).mappings().one()
        session = (await conn.execute(select(sessions))).mappings().one()
    priced = sum(row["cost_usd"] or 0.0 for row in rows.values())
    assert trace["unpriced_calls"] == session["unpriced_calls"] == 2
    assert trace["cost_usd"] == pytest.approx(priced) == session["cost_usd"]

    settings = make_settings(migrated_database)
    window = {"from": (NOW - timedelta(hours=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    async with AsyncTestClient(create_app(settings)) as client:
        client.headers.update(auth_headers(settings))
        by_trace = (await client.get(f"/api/v1/traces/{TRACE}")).json()
        by_session = (await client.get(f"/api/v1/sessions/{SESSION}")).json()
        model = (await client.get("/api/v1/models/openai/gpt-4o-mini")).json()
        usage = (await client.get("/api/v1/models/openai/gpt-4o-mini/usage", params=window)).json()
        answers = {}
        for source_name in ("raw", "rollup"):
            body = {
                "metrics": [{"id": "unpriced_calls"}, {"id": "cost_usd", "aggregation": "sum"}],
                "group_by": ["model"],
                "source": source_name,
                **window,
            }
            response = await client.post("/api/v1/metrics/query", json=body)
            assert response.status_code == 200, response.text
            answers[source_name] = {
                item["group"]["model"]: (item["totals"]["unpriced_calls_count"], item["totals"]["cost_usd_sum"])
                for item in response.json()["series"]
            }
    assert by_trace["unpriced_calls"] == by_session["unpriced_calls"] == 2
    # The model page: every name it was sent under; its usage: requests of all of them, the unpriced one.
    assert model["snapshots"] == ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"]
    assert (usage["requests"], usage["errors"], usage["unpriced_calls"]) == (3, 1, 1)
    assert usage["cost_usd"] == pytest.approx(list_price("openai/gpt-4o-mini"))
    assert answers["raw"] == answers["rollup"]
    assert answers["raw"]["acme/house-model"] == (1, 0.0)
    assert answers["raw"]["openai/gpt-4o-mini"] == (1, pytest.approx(list_price("openai/gpt-4o-mini")))


async def test_a_price_set_in_the_catalogue_wins_over_genai_prices(migrated_engine: AsyncEngine) -> None:
    async with migrated_engine.begin() as conn:
        await record_price(
            conn,
            provider="anthropic",
            name="claude-sonnet-4-5",
            effective_from=NOW - timedelta(days=1),
            changes={"input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0},
            display_name="Claude Sonnet 4.5 (negotiated)",
        )
    span = call("anthropic", "claude-sonnet-4-5-20250929")
    await TelemetryWriter(migrated_engine).write_spans([span])
    row = (await stored(migrated_engine))[span.span_id]
    assert (row["cost_usd"], row["cost_source"]) == (pytest.approx(1_200 / 1_000_000), "catalogue")
    assert row["cost_usd"] != pytest.approx(genai_list_price("anthropic", "claude-sonnet-4-5"))


async def test_the_migration_names_prices_and_regroups_existing_spans(
    migrated_engine: AsyncEngine, migrated_database: DatabaseSettings
) -> None:
    await run_migration(migrated_engine, migrated_database, ("downgrade", "0006"))
    old = [call("openai", "gpt-4o-mini"), call("openai", "gpt-4o-mini-2024-07-18"), call("acme", "house-model")]
    old.append(call("openai", "gpt-4o-mini-2024-07-18", cost=0.5))
    columns = [c.name for c in spans.columns if c.name not in ("model_id", "cost_source")]
    async with migrated_engine.begin() as conn:
        for record in [root(), *old]:
            values = {name: getattr(record, name) for name in columns}
            await conn.execute(insert(spans).values(values))
    await run_migration(migrated_engine, migrated_database, ("upgrade", "head"))

    rows = await stored(migrated_engine)
    asked, dated, unknown, reported = (rows[record.span_id] for record in old)
    assert asked["model_id"] == dated["model_id"] == reported["model_id"] == "openai/gpt-4o-mini"
    assert dated["model"] == "gpt-4o-mini-2024-07-18"
    assert (dated["cost_usd"], dated["cost_source"]) == (pytest.approx(list_price("openai/gpt-4o-mini")), "catalogue")
    assert (unknown["cost_usd"], unknown["cost_source"]) == (None, "none")
    assert (reported["cost_usd"], reported["cost_source"]) == (0.5, None)  # its origin was not recorded
    async with migrated_engine.connect() as conn:
        trace = (await conn.execute(select(traces))).mappings().one()
        rollup = (await conn.execute(select(metric_rollup_hour_table))).mappings().all()
    assert trace["models"] == ["acme/house-model", "openai/gpt-4o-mini"]
    assert trace["unpriced_calls"] == 1
    by_model: dict[str | None, int] = {}
    for row in rollup:
        by_model[row["model_id"]] = by_model.get(row["model_id"], 0) + row["span_count"]
    assert by_model == {None: 1, "acme/house-model": 1, "openai/gpt-4o-mini": 3}
