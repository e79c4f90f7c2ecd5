"""ModelRepository: the model catalogue, where each model was seen, and its usage over time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.core.errors import InvalidInput, NotFound
from observatory_api.core.query import TimeWindow, utc
from observatory_api.core.structs import copy_fields, field_names
from observatory_api.db import tables
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.metric_sql import BUCKET_ORIGIN_EPOCH
from observatory_api.metrics.repository import MetricRepository
from observatory_api.models.prices import load_price_history
from observatory_api.models.pricing import ModelPrices, PriceHistory, PricePeriod
from observatory_api.models.schemas import (
    ModelDetail,
    ModelInfo,
    ModelPricing,
    ModelUsage,
    PriceHistoryEntry,
    UsageInterval,
)
from observatory_api.models.usage import ComparedModels
from observatory_api.models.usage import model_usage as usage_from_metrics
from observatory_api.observability.db import timed
from observatory_api.settings import QuerySettings

_m = tables.models
_s = tables.spans
MAX_SERIES_POINTS = 2000


class ModelRepository:
    def __init__(self, engine: AsyncEngine, capabilities: DatabaseCapabilities) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine
        self._capabilities = capabilities

    @timed("models.list_models")
    async def list_models(self, *, provider: str | None = None) -> list[ModelInfo]:
        """The catalogue, each model with the prices in effect now."""
        stmt = select(_m).order_by(_m.c.provider, _m.c.name)
        if provider is not None:
            stmt = stmt.where(_m.c.provider == provider)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
            history = await load_price_history(conn, provider=provider)
        now = datetime.now(UTC)
        return [info for row in rows if (info := to_model_info(row, history, now)) is not None]

    @timed("models.get_model")
    async def get_model(self, provider: str, name: str) -> ModelDetail:
        """The catalogue entry with its price history and the first and last time a span used it."""
        # Spans name the model by its canonical id, the catalogue's id (core.canonical_models).
        used = _s.c.model_id == f"{provider}/{name}"
        async with self._engine.connect() as conn:
            info, history = await _catalogue_entry(conn, provider, name)
            seen = select(func.min(_s.c.start_time), func.max(_s.c.start_time)).where(used)
            first_seen, last_seen = (await conn.execute(seen)).one()
            names = select(_s.c.model).distinct().where(used, _s.c.model.is_not(None)).order_by(_s.c.model)
            snapshots = list((await conn.scalars(names)).all())
        return copy_fields(
            ModelDetail,
            info,
            first_seen=_as_utc(first_seen),
            last_seen=_as_utc(last_seen),
            snapshots=snapshots,
            price_history=price_history_entries(history.periods((provider, name))),
        )

    @timed("models.model_usage")
    async def model_usage(
        self,
        provider: str,
        name: str,
        *,
        window: TimeWindow,
        interval: UsageInterval | None,
        limits: QuerySettings | None = None,
        top_users: int = 10,
        compare_with: str | None = None,
    ) -> ModelUsage:
        """Totals, exact latency percentiles, a gap-free series (with `interval`), breakdowns by
        environment and top users, and (with `compare_with`) the cost at another model's prices,
        from the metric engine."""
        async with self._engine.connect() as conn:
            info, history = await _catalogue_entry(conn, provider, name)
            other = None
            if compare_with is not None:
                other_provider, _, other_name = compare_with.partition("/")
                try:
                    other_info, other_history = await _catalogue_entry(conn, other_provider, other_name)
                except NotFound:
                    raise InvalidInput.field(
                        "compare_with", f"no model {compare_with!r} in the catalogue", "query"
                    ) from None
                other = ComparedModels(
                    this=history.periods((provider, name)),
                    other_id=other_info.id,
                    other=other_history.periods((other_provider, other_name)),
                )
        return await usage_from_metrics(
            MetricRepository(self._engine, self._capabilities),
            info,
            window=window,
            interval=interval,
            limits=limits or QuerySettings(),
            top_users=top_users,
            compare_with=other,
        )


async def _catalogue_entry(conn: AsyncConnection, provider: str, name: str) -> tuple[ModelInfo, PriceHistory]:
    row = (await conn.execute(select(_m).where(_m.c.provider == provider, _m.c.name == name))).first()
    if row is not None:
        history = await load_price_history(conn, provider=provider, name=name)
        if (info := to_model_info(row, history, datetime.now(UTC))) is not None:
            return info, history
    raise NotFound(f"no model {provider}/{name} in the catalogue")


def bucket_starts(window: TimeWindow, seconds: int) -> list[datetime]:
    """Every bucket start from the one holding `window.start` to the one before `window.end`."""
    origin = datetime.fromtimestamp(BUCKET_ORIGIN_EPOCH, tz=window.start.tzinfo)
    first = origin + timedelta(seconds=((window.start - origin).total_seconds() // seconds) * seconds)
    count = int((window.end - first).total_seconds() // seconds) + (
        1 if (window.end - first).total_seconds() % seconds else 0
    )
    if count > MAX_SERIES_POINTS:
        raise InvalidInput.field("interval", f"gives more than {MAX_SERIES_POINTS} points over this range", "query")
    return [first + timedelta(seconds=seconds * i) for i in range(count)]


def to_model_info(row: Any, history: PriceHistory, now: datetime) -> ModelInfo | None:
    """The catalogue row with the prices in effect at `now` (None for a model without any price)."""
    # A model whose first price lies ahead is shown at that price: it is the only one it has.
    prices = history.at((row.provider, row.name), now, earliest_before_first=True)
    if prices is None:
        return None
    return copy_fields(ModelInfo, row, pricing=pricing_of(prices))


_PRICE_COLUMNS = {name: name.replace("_per_mtok", "_price_per_mtok") for name in field_names(ModelPricing)}


def pricing_of(prices: ModelPrices) -> ModelPricing:
    # The catalogue's columns name each price `<tokens>_price_per_mtok`, the API `<tokens>_per_mtok`.
    return copy_fields(ModelPricing, prices, renamed=_PRICE_COLUMNS)


def price_history_entries(periods: Sequence[PricePeriod]) -> list[PriceHistoryEntry]:
    ends: list[datetime | None] = [nxt.effective_from for _, nxt in pairwise(periods)]
    return [
        PriceHistoryEntry(
            **msgspec.structs.asdict(pricing_of(period.prices)),
            effective_from=period.effective_from,
            effective_to=end,
        )
        for period, end in zip(periods, [*ends, None], strict=True)
    ]


def _as_utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value) if isinstance(value, datetime) else value
