from __future__ import annotations

from datetime import UTC, datetime

import pytest

from observatory_api.db.tables import model_prices, models
from observatory_api.models.catalogue_data import STARTER_MODELS
from observatory_api.models.pricing import ModelPrices, PriceHistory, PricePeriod, price_usage

PLAIN = ModelPrices(input_price_per_mtok=2.0, output_price_per_mtok=8.0)
FULL = ModelPrices(
    input_price_per_mtok=3.0,
    output_price_per_mtok=15.0,
    cache_read_price_per_mtok=0.3,
    cache_write_price_per_mtok=3.75,
    reasoning_price_per_mtok=20.0,
)


def test_prices_are_per_million_tokens() -> None:
    assert price_usage(PLAIN, input_tokens=1_000_000, output_tokens=1_000_000) == pytest.approx(10.0)
    assert price_usage(PLAIN, input_tokens=1000, output_tokens=500) == pytest.approx(0.002 + 0.004)


def test_no_usage_costs_nothing() -> None:
    assert price_usage(FULL, input_tokens=0, output_tokens=0) == 0.0


def test_cache_and_reasoning_tokens_are_carved_out_of_the_totals() -> None:
    cost = price_usage(
        FULL,
        input_tokens=10_000,  # 6000 uncached + 3000 cache reads + 1000 cache writes
        output_tokens=2_000,  # 1500 reasoning + 500 plain output
        cache_read_input_tokens=3_000,
        cache_creation_input_tokens=1_000,
        reasoning_output_tokens=1_500,
    )
    expected = (6000 * 3.0 + 3000 * 0.3 + 1000 * 3.75 + 1500 * 20.0 + 500 * 15.0) / 1e6
    assert cost == pytest.approx(expected)


def test_missing_special_prices_fall_back_to_input_and_output_prices() -> None:
    cost = price_usage(
        PLAIN,
        input_tokens=10_000,
        output_tokens=2_000,
        cache_read_input_tokens=3_000,
        cache_creation_input_tokens=1_000,
        reasoning_output_tokens=1_500,
    )
    assert cost == price_usage(PLAIN, input_tokens=10_000, output_tokens=2_000)


def test_negative_counts_are_treated_as_zero() -> None:
    cost = price_usage(
        FULL,
        input_tokens=-5,
        output_tokens=1_000_000,
        cache_read_input_tokens=-1,
        cache_creation_input_tokens=-1,
        reasoning_output_tokens=-100,
    )
    assert cost == pytest.approx(15.0)


def test_cache_counts_larger_than_the_input_are_trusted() -> None:
    cost = price_usage(FULL, input_tokens=100, output_tokens=0, cache_read_input_tokens=1_000_000)
    assert cost == pytest.approx(0.3)


def test_prices_come_from_a_models_row() -> None:
    row = {"id": "x/y", **{name: 1.5 for name in ModelPrices.__struct_fields__}, "context_window": 10}
    assert ModelPrices.from_row(row) == ModelPrices(
        input_price_per_mtok=1.5,
        output_price_per_mtok=1.5,
        cache_read_price_per_mtok=1.5,
        cache_write_price_per_mtok=1.5,
        reasoning_price_per_mtok=1.5,
    )


def test_catalogue_entries_are_models_rows_with_their_prices() -> None:
    price_columns = [c.name for c in model_prices.c if c.name.endswith("_per_mtok")]
    columns = list(models.c.keys()) + price_columns
    ids = [entry["id"] for entry in STARTER_MODELS]
    assert len(ids) == len(set(ids)) >= 25
    for entry in STARTER_MODELS:
        assert list(entry) == columns
        assert entry["id"] == f"{entry['provider']}/{entry['name']}"
        assert entry["input_price_per_mtok"] >= 0
        assert entry["output_price_per_mtok"] >= 0
        ModelPrices.from_row(entry)  # every entry can be priced


def test_catalogue_prices_a_known_call() -> None:
    gpt_4o = next(entry for entry in STARTER_MODELS if entry["id"] == "openai/gpt-4o")
    cost = price_usage(
        ModelPrices.from_row(gpt_4o), input_tokens=2_000, output_tokens=500, cache_read_input_tokens=1_000
    )
    assert cost == pytest.approx((1000 * 2.5 + 1000 * 1.25 + 500 * 10.0) / 1e6)


def _at(day: int) -> datetime:
    return datetime(2026, 3, day, tzinfo=UTC)


def test_price_history_answers_the_price_in_effect_at_a_time() -> None:
    history = PriceHistory(
        # Given out of order on purpose: the history sorts each model's periods.
        {
            ("p", "m"): [
                PricePeriod(effective_from=_at(10), prices=FULL),
                PricePeriod(effective_from=_at(1), prices=PLAIN),
            ]
        }
    )
    assert history.at(("p", "m"), _at(5)) == PLAIN
    assert history.at(("p", "m"), _at(10)) == FULL  # a period starts at its effective time, inclusive
    assert history.at(("p", "m"), _at(20)) == FULL
    assert [p.prices for p in history.periods(("p", "m"))] == [PLAIN, FULL]
    # Before the first price the price is unknown, unless the caller asks for the first one.
    before = datetime(2026, 2, 1, tzinfo=UTC)
    assert history.at(("p", "m"), before) is None
    assert history.at(("p", "m"), before, earliest_before_first=True) == PLAIN
    assert history.at(("p", "other"), _at(5), earliest_before_first=True) is None
