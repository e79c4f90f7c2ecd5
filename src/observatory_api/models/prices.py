"""Model prices over time in `model_prices`: reading the history, and recording a price change."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from observatory_api.core.errors import InvalidInput, NotFound
from observatory_api.db import tables
from observatory_api.models.pricing import ModelKey, ModelPrices, PriceHistory, PricePeriod

_m = tables.models
_p = tables.model_prices
PRICE_FIELDS = ModelPrices.__struct_fields__


class RecordedPrice(msgspec.Struct, frozen=True, kw_only=True):
    model_id: str
    effective_from: datetime
    prices: ModelPrices
    created_model: bool  # the model was new to the catalogue
    replaced: bool  # an entry with the same effective time was overwritten


async def load_price_history(
    conn: AsyncConnection, *, provider: str | None = None, name: str | None = None
) -> PriceHistory:
    """The price periods of every model, or of those matching `provider` (and `name`)."""
    stmt = select(_m.c.provider, _m.c.name, _p).join(_p, _p.c.model_id == _m.c.id)
    if provider is not None:
        stmt = stmt.where(_m.c.provider == provider)
    if name is not None:
        stmt = stmt.where(_m.c.name == name)
    periods: dict[ModelKey, list[PricePeriod]] = defaultdict(list)
    for row in (await conn.execute(stmt)).mappings():
        period = PricePeriod(effective_from=row["effective_from"], prices=ModelPrices.from_row(row))
        periods[(row["provider"], row["name"])].append(period)
    return PriceHistory(periods)


async def record_price(
    conn: AsyncConnection,
    *,
    provider: str,
    name: str,
    effective_from: datetime,
    changes: dict[str, float | None],
    display_name: str | None = None,
    context_window: int | None = None,
) -> RecordedPrice:
    """Record the prices that take effect at `effective_from`, in the caller's transaction.

    Prices left out of `changes` keep the value in effect at that time, so changing the input
    price does not silently drop a cache price. A model not in the catalogue is added only when
    `display_name` is given; its first price must then set the input and output prices.
    """
    if unknown := set(changes) - set(PRICE_FIELDS):
        raise InvalidInput(f"unknown price fields: {', '.join(sorted(unknown))}")
    model_id = f"{provider}/{name}"
    exists = (await conn.execute(select(_m.c.id).where(_m.c.provider == provider, _m.c.name == name))).first()
    if exists is None:
        if display_name is None:
            raise NotFound(f"no model {model_id} in the catalogue (give a display name to add it)")
        await conn.execute(
            insert(_m).values(
                id=model_id, provider=provider, name=name, display_name=display_name, context_window=context_window
            )
        )
    history = await load_price_history(conn, provider=provider, name=name)
    base = history.at((provider, name), effective_from, earliest_before_first=True)
    if base is None:
        missing = {"input_price_per_mtok", "output_price_per_mtok"} - set(changes)
        if missing:
            raise InvalidInput(f"{model_id} has no price yet: set {' and '.join(sorted(missing))}")
        base = ModelPrices(input_price_per_mtok=0.0, output_price_per_mtok=0.0)
    prices = msgspec.structs.replace(base, **changes)
    _check(prices)
    values = {field: getattr(prices, field) for field in PRICE_FIELDS}
    key = (_p.c.model_id == model_id) & (_p.c.effective_from == effective_from)
    replaced = (await conn.execute(update(_p).where(key).values(**values))).rowcount > 0
    if not replaced:
        await conn.execute(insert(_p).values(model_id=model_id, effective_from=effective_from, **values))
    return RecordedPrice(
        model_id=model_id,
        effective_from=effective_from,
        prices=prices,
        created_model=exists is None,
        replaced=replaced,
    )


def _check(prices: ModelPrices) -> None:
    for field in PRICE_FIELDS:
        value = getattr(prices, field)
        if field in ("input_price_per_mtok", "output_price_per_mtok") and value is None:
            raise InvalidInput(f"{field} cannot be empty")
        if value is not None and not 0 <= value < float("inf"):
            raise InvalidInput(f"{field} must be a finite price of 0 or more, not {value}")
