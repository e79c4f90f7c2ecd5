"""Naming and pricing the model of every span before it is stored.

Each span gets its provider in the GenAI conventions' vocabulary and its canonical model id
(`core.canonical_models`), then a cost and the source of that cost (`cost_source`):

- `instrumentation`: the cost the instrumentation sent, kept when positive (and a 0 kept when
  no price is known);
- `catalogue`: the catalogue's price in effect at the span's `start_time` (`model_prices`, which
  `observatory-api models set-price` changes), looked up by the model as sent, then by its
  canonical id: the catalogue takes precedence over genai-prices;
- `genai-prices`: genai-prices' price for the model at that time;
- `none`: no tokens to price, or no price known: the cost stays NULL (unpriced, never "free").

An instrumentation's 0 with tokens is re-priced when a price is known (OpenLIT sends 0 for the
models its own list lacks). A span that starts before its model's first catalogue price gets no
catalogue cost: the price then is unknown (record the launch price with an early
`--effective-from`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.core.canonical_models import CanonicalModel, canonical_model
from observatory_api.core.records import SpanRecord
from observatory_api.models.price_data import genai_price
from observatory_api.models.prices import load_price_history
from observatory_api.models.pricing import PriceHistory, price_usage

CostSource = Literal["instrumentation", "catalogue", "genai-prices", "none"]
COST_SOURCES: tuple[CostSource, ...] = ("instrumentation", "catalogue", "genai-prices", "none")
# A price recorded with `observatory-api models set-price` reaches running writers within this.
HISTORY_TTL_SECONDS = 60.0


class CostFiller:
    """Sets the provider, canonical model, cost and cost source of records; the catalogue's price
    history is read at most once per `ttl_seconds` per writer, so a batch costs no query most of
    the time, and genai-prices lookups are cached per (provider, model) in `core.canonical_models`."""

    def __init__(
        self, *, ttl_seconds: float = HISTORY_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._history: PriceHistory | None = None
        self._loaded_at = 0.0

    def needs_history(self, records: Sequence[SpanRecord]) -> bool:
        """Whether pricing `records` needs the catalogue (and so a connection, when it is stale)."""
        return self._stale(self._clock()) and any(_priceable(record) for record in records)

    def _stale(self, now: float) -> bool:
        return self._history is None or now - self._loaded_at >= self._ttl

    async def fill(self, conn: AsyncConnection | None, records: Sequence[SpanRecord]) -> list[SpanRecord]:
        """`records` named and priced; the history is reloaded through `conn` when it is stale."""
        now = self._clock()
        if conn is not None and self._stale(now) and any(_priceable(record) for record in records):
            self._history = await load_price_history(conn)
            self._loaded_at = now
        history = self._history or PriceHistory({})
        return [name_and_price(record, history) for record in records]


def name_and_price(record: SpanRecord, history: PriceHistory) -> SpanRecord:
    """`record` with its normalised provider, canonical model, cost and cost source."""
    canonical = canonical_model(record.provider, record.model)
    cost, source = price_of(record, canonical, history)
    return msgspec.structs.replace(
        record, provider=canonical.provider, model_id=canonical.model_id, cost_usd=cost, cost_source=source
    )


def price_of(record: SpanRecord, canonical: CanonicalModel, history: PriceHistory) -> tuple[float | None, CostSource]:
    """The cost of `record` and where it came from (see the module's docstring)."""
    sent = record.cost_usd
    if sent is not None and sent > 0:
        return sent, "instrumentation"
    if _priceable(record) and canonical.model_id is not None:
        tokens = {
            "input_tokens": record.input_tokens or 0,
            "output_tokens": record.output_tokens or 0,
            "cache_read_input_tokens": record.cache_read_input_tokens or 0,
            "cache_creation_input_tokens": record.cache_creation_input_tokens or 0,
            "reasoning_output_tokens": record.reasoning_output_tokens or 0,
        }
        maker, _, family = canonical.model_id.partition("/")
        for key in ((canonical.provider or "", record.model or ""), (maker, family)):
            prices = history.at(key, record.start_time)
            if prices is not None:
                return price_usage(prices, **tokens), "catalogue"
        if canonical.price_provider is not None and canonical.price_model is not None:
            cost = genai_price(canonical.price_provider, canonical.price_model, when=record.start_time, **tokens)
            if cost is not None:
                return cost, "genai-prices"
    if sent is not None:  # an instrumentation's 0 that nothing better replaces
        return sent, "instrumentation"
    return None, "none"


def _priceable(record: SpanRecord) -> bool:
    return record.model is not None and (record.input_tokens is not None or record.output_tokens is not None)
