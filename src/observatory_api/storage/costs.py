"""Pricing spans that arrive without a cost, from the model price history.

A span is priced with the catalogue prices in effect at its `start_time` (`model_prices`), when
its provider and model are in the catalogue and it reports tokens. A span that starts before the
model's first known price gets no cost: the price then is unknown, and guessing it from a later
price would be invented data (record the model's launch price with an early `--effective-from`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.models.prices import load_price_history
from observatory_api.models.pricing import PriceHistory, price_usage
from observatory_api.storage.records import SpanRecord

# A price recorded with `observatory-api models set-price` reaches running writers within this.
HISTORY_TTL_SECONDS = 60.0


class CostFiller:
    """Fills `cost_usd` of records that lack it; the price history is read at most once per
    `ttl_seconds` per writer, so pricing a batch costs no query most of the time."""

    def __init__(
        self, *, ttl_seconds: float = HISTORY_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._history: PriceHistory | None = None
        self._loaded_at = 0.0

    async def fill(self, conn: AsyncConnection, records: Sequence[SpanRecord]) -> Sequence[SpanRecord]:
        if not any(_needs_price(record) for record in records):
            return records
        history = await self._price_history(conn)
        filled = []
        for record in records:
            prices = None
            if _needs_price(record):
                prices = history.at((record.provider or "", record.model or ""), record.start_time)
            if prices is not None:
                cost = price_usage(
                    prices,
                    input_tokens=record.input_tokens or 0,
                    output_tokens=record.output_tokens or 0,
                    cache_read_input_tokens=record.cache_read_input_tokens or 0,
                    cache_creation_input_tokens=record.cache_creation_input_tokens or 0,
                    reasoning_output_tokens=record.reasoning_output_tokens or 0,
                )
                record = msgspec.structs.replace(record, cost_usd=cost)
            filled.append(record)
        return filled

    async def _price_history(self, conn: AsyncConnection) -> PriceHistory:
        now = self._clock()
        if self._history is None or now - self._loaded_at >= self._ttl:
            self._history = await load_price_history(conn)
            self._loaded_at = now
        return self._history


def _needs_price(record: SpanRecord) -> bool:
    return (
        record.cost_usd is None
        and record.provider is not None
        and record.model is not None
        and (record.input_tokens is not None or record.output_tokens is not None)
    )
