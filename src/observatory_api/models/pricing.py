"""Pricing one call's token usage with a model's list prices.

Token convention (the one `spans` stores, whatever the provider reports):
- `input_tokens` counts every prompt token, including cache reads and cache writes;
- `output_tokens` counts every generated token, including reasoning tokens.
Providers that report cached or reasoning tokens separately (Anthropic's `input_tokens`
excludes cache tokens) are converted to this convention when ingested.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Required, TypedDict

import msgspec

_PER_MILLION = 1_000_000


class TokenCounts(TypedDict, total=False):
    """A call's token counts as `price_usage` takes them (input and output are required there)."""

    input_tokens: Required[int]
    output_tokens: Required[int]
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    reasoning_output_tokens: int


class ModelPrices(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens; None means "priced like the base input (or output) token"."""

    input_price_per_mtok: float
    output_price_per_mtok: float
    cache_read_price_per_mtok: float | None = None
    cache_write_price_per_mtok: float | None = None
    reasoning_price_per_mtok: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ModelPrices:
        """Prices from a `model_prices` row or a catalogue entry (extra keys are ignored)."""
        prices: dict[str, Any] = {name: row.get(name) for name in cls.__struct_fields__}
        return cls(**prices)


class PricePeriod(msgspec.Struct, frozen=True, kw_only=True):
    """A model's prices from `effective_from` until the next period of the same model starts."""

    effective_from: datetime
    prices: ModelPrices


ModelKey = tuple[str, str]  # (provider, name)


class PriceHistory:
    """Every model's price periods, oldest first; answers "which price held at this time"."""

    def __init__(self, periods: Mapping[ModelKey, Iterable[PricePeriod]]) -> None:
        self._periods = {key: sorted(items, key=_start) for key, items in periods.items()}

    def periods(self, key: ModelKey) -> Sequence[PricePeriod]:
        return self._periods.get(key, ())

    def at(self, key: ModelKey, when: datetime, *, earliest_before_first: bool = False) -> ModelPrices | None:
        return price_in_effect(self.periods(key), when, earliest_before_first=earliest_before_first)


def price_in_effect(
    periods: Sequence[PricePeriod], when: datetime, *, earliest_before_first: bool = False
) -> ModelPrices | None:
    """The prices in effect at `when` among `periods` (oldest first). Before the first period:
    None (the price was not known then), or with `earliest_before_first` the first known price."""
    if not periods:
        return None
    index = bisect_right(periods, when, key=_start) - 1
    if index < 0:
        return periods[0].prices if earliest_before_first else None
    return periods[index].prices


def _start(period: PricePeriod) -> datetime:
    return period.effective_from


def price_usage(
    prices: ModelPrices,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    reasoning_output_tokens: int = 0,
) -> float:
    """The cost in USD of one call, following the token convention of this module.

    Uncached input is charged at the input price, cache reads at the cache-read price and cache
    writes at the cache-write price (both falling back to the input price), reasoning tokens at
    the reasoning price (falling back to the output price) and the remaining output at the output
    price. Negative counts are treated as 0; cache or reasoning counts larger than their total are
    trusted, and the uncached or plain remainder is then 0.
    """
    input_tokens = max(input_tokens, 0)
    output_tokens = max(output_tokens, 0)
    cache_read = max(cache_read_input_tokens, 0)
    cache_write = max(cache_creation_input_tokens, 0)
    reasoning = max(reasoning_output_tokens, 0)

    uncached_input = max(input_tokens - cache_read - cache_write, 0)
    plain_output = max(output_tokens - reasoning, 0)
    input_price = prices.input_price_per_mtok
    output_price = prices.output_price_per_mtok
    cache_read_price = _or(prices.cache_read_price_per_mtok, input_price)
    cache_write_price = _or(prices.cache_write_price_per_mtok, input_price)
    reasoning_price = _or(prices.reasoning_price_per_mtok, output_price)

    total = (
        uncached_input * input_price
        + cache_read * cache_read_price
        + cache_write * cache_write_price
        + reasoning * reasoning_price
        + plain_output * output_price
    )
    return total / _PER_MILLION


def _or(price: float | None, fallback: float) -> float:
    return fallback if price is None else price
