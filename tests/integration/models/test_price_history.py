"""Model price history on SQLite and PostgreSQL: spans priced at the price of their time, the
history in GET /models/{id}, compare_with across price changes, and the migration both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.app import create_app
from observatory_api.db.tables import model_prices, spans
from observatory_api.models.catalogue_data import STARTER_MODELS
from observatory_api.models.prices import load_price_history, record_price
from observatory_api.models.pricing import ModelPrices, PriceHistory, price_usage
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import SpanRecord, TelemetryWriter
from observatory_api.storage.costs import CostFiller
from tests.conftest import auth_headers, make_settings, run_migration

# A price change of gpt-4o at T0, of claude-sonnet-4 two hours later.
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
GPT = ("openai", "gpt-4o")
CLAUDE = ("anthropic", "claude-sonnet-4")
CATALOGUE = {m["id"]: ModelPrices.from_row(m) for m in STARTER_MODELS}
_ids = count(1)


def llm_span(model: tuple[str, str], start: datetime, *, cost: float | None = None) -> SpanRecord:
    n = next(_ids)
    return SpanRecord(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        service_name="prices-test",
        name="chat",
        kind="llm",
        start_time=start,
        end_time=start + timedelta(seconds=1),
        duration_ms=1000.0,
        provider=model[0],
        model=model[1],
        input_tokens=10_000,
        output_tokens=2_000,
        cache_read_input_tokens=4_000,
        cache_creation_input_tokens=1_000,
        reasoning_output_tokens=500,
        cost_usd=cost,
        status="ok",
    )


def cost_of(prices: ModelPrices, span: SpanRecord) -> float:
    return price_usage(
        prices,
        input_tokens=span.input_tokens or 0,
        output_tokens=span.output_tokens or 0,
        cache_read_input_tokens=span.cache_read_input_tokens or 0,
        cache_creation_input_tokens=span.cache_creation_input_tokens or 0,
        reasoning_output_tokens=span.reasoning_output_tokens or 0,
    )


NEW_GPT = ModelPrices(
    input_price_per_mtok=5.0, output_price_per_mtok=20.0, cache_read_price_per_mtok=1.25, reasoning_price_per_mtok=30.0
)
NEW_CLAUDE = ModelPrices(
    input_price_per_mtok=1.0,
    output_price_per_mtok=2.0,
    cache_read_price_per_mtok=0.1,
    cache_write_price_per_mtok=1.5,
    reasoning_price_per_mtok=None,
)


async def record_changes(engine: AsyncEngine) -> None:
    """gpt-4o changes input, output and reasoning at T0 (its cache-read price carries over);
    claude-sonnet-4 changes everything at T0 + 2 h, clearing its reasoning price."""
    async with engine.begin() as conn:
        await record_price(
            conn,
            provider=GPT[0],
            name=GPT[1],
            effective_from=T0,
            changes={"input_price_per_mtok": 5.0, "output_price_per_mtok": 20.0, "reasoning_price_per_mtok": 30.0},
        )
        await record_price(
            conn,
            provider=CLAUDE[0],
            name=CLAUDE[1],
            effective_from=T0 + timedelta(hours=2),
            changes={field: getattr(NEW_CLAUDE, field) for field in ModelPrices.__struct_fields__},
        )


async def stored_costs(engine: AsyncEngine) -> dict[str, float | None]:
    async with engine.connect() as conn:
        return dict((await conn.execute(select(spans.c.span_id, spans.c.cost_usd))).all())  # type: ignore[arg-type]


async def test_spans_are_priced_at_the_price_of_their_start_time(migrated_engine: AsyncEngine) -> None:
    await record_changes(migrated_engine)
    async with migrated_engine.begin() as conn:
        # A model added later, with its first price from T0: earlier spans have no known price.
        await record_price(
            conn,
            provider="acme",
            name="new-model",
            effective_from=T0,
            changes={"input_price_per_mtok": 1.0, "output_price_per_mtok": 1.0},
            display_name="Acme New",
        )
    before, at, after = (
        llm_span(GPT, T0 - timedelta(minutes=1)),
        llm_span(GPT, T0),
        llm_span(GPT, T0 + timedelta(days=3)),
    )
    reported = llm_span(GPT, T0 + timedelta(hours=1), cost=0.5)
    early, late = llm_span(("acme", "new-model"), T0 - timedelta(seconds=1)), llm_span(("acme", "new-model"), T0)
    await TelemetryWriter(migrated_engine).write_spans([before, at, after, reported, early, late])
    costs = await stored_costs(migrated_engine)
    assert costs[before.span_id] == pytest.approx(cost_of(CATALOGUE["openai/gpt-4o"], before))
    assert costs[at.span_id] == pytest.approx(cost_of(NEW_GPT, at))
    assert costs[after.span_id] == pytest.approx(cost_of(NEW_GPT, after))
    assert costs[before.span_id] != pytest.approx(costs[at.span_id])
    assert costs[reported.span_id] == 0.5  # a reported cost is kept
    assert costs[early.span_id] is None
    assert costs[late.span_id] == pytest.approx(0.012)


async def test_a_writer_sees_a_new_price_once_its_cached_history_expires(migrated_engine: AsyncEngine) -> None:
    clock = iter([0.0, 30.0, 61.0]).__next__
    filler = CostFiller(ttl_seconds=60.0, clock=clock)
    span = llm_span(GPT, T0 + timedelta(hours=1))

    async def fill() -> SpanRecord:
        async with migrated_engine.connect() as conn:
            (filled,) = await filler.fill(conn, [span])
        return filled

    first = await fill()
    await record_changes(migrated_engine)
    cached, refreshed = await fill(), await fill()
    assert first.cost_usd == cached.cost_usd == pytest.approx(cost_of(CATALOGUE["openai/gpt-4o"], span))
    assert refreshed.cost_usd == pytest.approx(cost_of(NEW_GPT, span))


async def test_model_detail_lists_the_history_and_the_catalogue_the_current_price(
    migrated_database: DatabaseSettings, migrated_engine: AsyncEngine
) -> None:
    await record_changes(migrated_engine)
    future = datetime.now(UTC) + timedelta(days=30)
    async with migrated_engine.begin() as conn:
        await record_price(
            conn, provider=GPT[0], name=GPT[1], effective_from=future, changes={"input_price_per_mtok": 9.0}
        )
    settings = make_settings(migrated_database)
    async with AsyncTestClient(create_app(settings)) as client:
        client.headers.update(auth_headers(settings))
        detail = (await client.get("/api/v1/models/openai/gpt-4o")).json()
        listed = (await client.get("/api/v1/models", params={"provider": "openai"})).json()["data"]
    history = detail["price_history"]
    assert [datetime.fromisoformat(h["effective_from"]) for h in history] == [
        datetime(1970, 1, 1, tzinfo=UTC),
        T0,
        future,
    ]
    assert [datetime.fromisoformat(h["effective_to"]) for h in history[:2]] == [T0, future]
    assert history[-1]["effective_to"] is None
    assert history[0]["input_per_mtok"] == 2.5 and history[1]["input_per_mtok"] == 5.0
    assert history[2]["input_per_mtok"] == 9.0 and history[2]["output_per_mtok"] == 20.0  # carried over
    assert history[1]["cache_read_per_mtok"] == 1.25 and history[1]["reasoning_per_mtok"] == 30.0
    # `pricing` stays the price in effect now: the future change is not yet applied.
    current = {
        "input_per_mtok": 5.0,
        "output_per_mtok": 20.0,
        "cache_read_per_mtok": 1.25,
        "cache_write_per_mtok": None,
        "reasoning_per_mtok": 30.0,
    }
    assert detail["pricing"] == current
    assert next(m for m in listed if m["id"] == "openai/gpt-4o")["pricing"] == current
    assert {"first_seen", "last_seen", "display_name", "context_window"} <= set(detail)


async def test_compare_with_prices_each_span_at_both_models_prices_of_its_time(
    migrated_database: DatabaseSettings, migrated_engine: AsyncEngine
) -> None:
    await record_changes(migrated_engine)
    used = [llm_span(GPT, T0 + timedelta(hours=h)) for h in (-5, -1, 0, 1, 3, 20)]
    await TelemetryWriter(migrated_engine).write_spans(used)
    history = await _history(migrated_engine)

    def priced(model: tuple[str, str]) -> float:
        total = 0.0
        for span in used:
            prices = history.at(model, span.start_time)
            assert prices is not None
            total += cost_of(prices, span)
        return total

    settings = make_settings(migrated_database)
    window = {"from": (T0 - timedelta(days=1)).isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
    async with AsyncTestClient(create_app(settings)) as client:
        client.headers.update(auth_headers(settings))
        params = {**window, "compare_with": "anthropic/claude-sonnet-4"}
        response = await client.get("/api/v1/models/openai/gpt-4o/usage", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        # Without a price change inside the range, the one totals query serves the comparison.
        quiet = {"from": (T0 + timedelta(hours=4)).isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
        late = (await client.get("/api/v1/models/openai/gpt-4o/usage", params={**params, **quiet})).json()
    comparison = body["comparison"]
    assert comparison["pricing"] == "price_at_span_time"
    assert body["cost_usd"] == pytest.approx(priced(GPT))  # the writer priced them the same way
    assert comparison["current_model_list_cost_usd"] == pytest.approx(priced(GPT))
    assert comparison["cost_usd"] == pytest.approx(priced(CLAUDE))
    assert comparison["difference_usd"] == pytest.approx(priced(CLAUDE) - priced(GPT))
    # Today's prices alone would give another answer: the history is what is being used.
    today = sum(cost_of(NEW_CLAUDE, s) for s in used)
    assert comparison["cost_usd"] != pytest.approx(today)
    assert late["comparison"]["cost_usd"] == pytest.approx(cost_of(NEW_CLAUDE, used[-1]))
    assert late["comparison"]["current_model_list_cost_usd"] == pytest.approx(cost_of(NEW_GPT, used[-1]))


async def _history(engine: AsyncEngine) -> PriceHistory:
    async with engine.connect() as conn:
        return await load_price_history(conn)


async def test_migration_downgrade_keeps_the_current_price_and_upgrade_backfills(
    migrated_engine: AsyncEngine, migrated_database: DatabaseSettings
) -> None:
    await record_changes(migrated_engine)
    await run_migration(migrated_engine, migrated_database, ("downgrade", "0003"))
    async with migrated_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM models"))).mappings().all()
        tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
    assert "model_prices" not in tables
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == len(STARTER_MODELS)
    # The price in effect now went back into `models`.
    assert ModelPrices.from_row(by_id["openai/gpt-4o"]) == NEW_GPT
    assert ModelPrices.from_row(by_id["anthropic/claude-sonnet-4"]) == NEW_CLAUDE
    assert ModelPrices.from_row(by_id["openai/gpt-4o-mini"]) == CATALOGUE["openai/gpt-4o-mini"]

    await run_migration(migrated_engine, migrated_database, ("upgrade", "head"))
    async with migrated_engine.connect() as conn:
        entries = (await conn.execute(select(model_prices))).mappings().all()
    assert len(entries) == len(STARTER_MODELS)
    assert {e["effective_from"] for e in entries} == {datetime(1970, 1, 1, tzinfo=UTC)}
    gpt = next(e for e in entries if e["model_id"] == "openai/gpt-4o")
    assert ModelPrices.from_row(gpt) == NEW_GPT
