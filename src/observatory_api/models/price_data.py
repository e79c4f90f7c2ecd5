"""Prices from genai-prices (Pydantic's maintained price data, bundled with the package, read offline).

`core.canonical_models` finds the genai-prices model of a span; this module prices a call's tokens with
it. genai-prices' own `calc_price` costs ~200 us a call (Decimal arithmetic over its unit
registry), too much for the ingest path: the prices in effect on a day are resolved once per model
into floats (bounded cache) and applied with `models.pricing.price_usage`. Tiered prices (a rate
for all tokens once the prompt passes a threshold) pick their tier from the input tokens as
genai-prices does. A model priced by anything else than its tokens (per request, text-only keys)
goes through `calc_price` itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Unpack

from genai_prices import types
from genai_prices.types import TieredPrices, Usage

from observatory_api.models.pricing import ModelPrices, TokenCounts, price_usage

# genai-prices price key -> ModelPrices field.
_TOKEN_KEYS = {
    "input_mtok": "input_price_per_mtok",
    "output_mtok": "output_price_per_mtok",
    "cache_read_mtok": "cache_read_price_per_mtok",
    "cache_write_mtok": "cache_write_price_per_mtok",
}
# Units a span never reports (audio, images, video, tool searches): they cost nothing here.
_UNREPORTED = ("audio", "image", "video", "search")

Tiers = dict[str, tuple[float, tuple[tuple[int, float], ...]]]  # field -> (base, ((start, price), ...))


def genai_price(
    provider: types.Provider,
    model: types.ModelInfo,
    *,
    when: datetime,
    **tokens: Unpack[TokenCounts],
) -> float | None:
    """The cost in USD of one call by genai-prices' price for `model` at `when` (None: no price)."""
    tiers = _tiers(provider, model, when.astimezone(UTC).date())
    input_tokens = tokens["input_tokens"]
    if tiers is None:  # priced by more than tokens: genai-prices computes it
        cache_read, cache_write = tokens.get("cache_read_input_tokens", 0), tokens.get("cache_creation_input_tokens", 0)
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=tokens["output_tokens"],
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        try:
            return float(model.calc_price(usage, provider, genai_request_timestamp=when).total_price)
        except (LookupError, ValueError, TypeError, ArithmeticError):
            return None
    if "input_price_per_mtok" not in tiers or "output_price_per_mtok" not in tiers:
        return None
    prices = ModelPrices(**{name: _at(tier, input_tokens) for name, tier in tiers.items()})
    return price_usage(prices, **tokens)


def _at(tier: tuple[float, tuple[tuple[int, float], ...]], input_tokens: int) -> float:
    base, steps = tier
    price = base
    for start, step_price in steps:  # ascending: the highest threshold passed applies to all tokens
        if input_tokens > start:
            price = step_price
    return price


_MAX_CACHED = 2048
_cache: dict[tuple[str, str, date], Tiers | None] = {}


def _tiers(provider: types.Provider, model: types.ModelInfo, day: date) -> Tiers | None:
    """The prices of `model` on `day`, cached per (provider, model, day): a handful on the ingest
    path (genai-prices' objects are not hashable, so the cache is keyed by their ids)."""
    key = (provider.id, model.id, day)
    if key in _cache:
        return _cache[key]
    if len(_cache) >= _MAX_CACHED:
        _cache.clear()
    _cache[key] = found = _resolve(model, day)
    return found


def _resolve(model: types.ModelInfo, day: date) -> Tiers | None:
    resolved = model.get_prices(datetime.combine(day, time(12), tzinfo=UTC))
    tiers: Tiers = {}
    for key, value in vars(resolved).items():
        if value is None or key.startswith("_"):
            continue
        field = _TOKEN_KEYS.get(key)
        if field is None:
            if any(unit in key for unit in _UNREPORTED):
                continue
            return None
        tiers[field] = _as_tier(value)
    return tiers


def _as_tier(value: Any) -> tuple[float, tuple[tuple[int, float], ...]]:
    if isinstance(value, TieredPrices):
        steps = sorted((tier.start, float(tier.price)) for tier in value.tiers)
        return float(value.base), tuple(steps)
    return float(Decimal(value)), ()
