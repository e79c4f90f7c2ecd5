"""Pricing spans that arrive without a cost, from the model catalogue.

The catalogue holds one price per model and no price history yet, so "the price at the span's
time" is today's catalogue price; a price change applies to spans written after it. A span is
priced only when its provider and model are in the catalogue and it reports tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.db.tables import models
from observatory_api.models.pricing import ModelPrices, price_usage
from observatory_api.storage.records import SpanRecord


class CostFiller:
    """Fills `cost_usd` of records that lack it; the catalogue is read once per writer."""

    def __init__(self) -> None:
        self._prices: dict[tuple[str, str], ModelPrices] | None = None

    async def fill(self, conn: AsyncConnection, records: Sequence[SpanRecord]) -> Sequence[SpanRecord]:
        if not any(_needs_price(record) for record in records):
            return records
        prices = await self._catalogue(conn)
        filled = []
        for record in records:
            price = prices.get((record.provider or "", record.model or "")) if _needs_price(record) else None
            if price is not None:
                cost = price_usage(
                    price,
                    input_tokens=record.input_tokens or 0,
                    output_tokens=record.output_tokens or 0,
                    cache_read_input_tokens=record.cache_read_input_tokens or 0,
                    cache_creation_input_tokens=record.cache_creation_input_tokens or 0,
                    reasoning_output_tokens=record.reasoning_output_tokens or 0,
                )
                record = msgspec.structs.replace(record, cost_usd=cost)
            filled.append(record)
        return filled

    async def _catalogue(self, conn: AsyncConnection) -> dict[tuple[str, str], ModelPrices]:
        if self._prices is None:
            rows = (await conn.execute(select(models))).mappings().all()
            self._prices = {(row["provider"], row["name"]): ModelPrices.from_row(row) for row in rows}
        return self._prices


def _needs_price(record: SpanRecord) -> bool:
    return (
        record.cost_usd is None
        and record.provider is not None
        and record.model is not None
        and (record.input_tokens is not None or record.output_tokens is not None)
    )
