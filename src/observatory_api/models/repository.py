"""ModelRepository: the model catalogue, where each model was seen, and its usage over time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.db import tables
from observatory_api.db.dialect import BUCKET_ORIGIN_EPOCH, percentiles, time_bucket
from observatory_api.errors import InvalidInput, NotFound
from observatory_api.models.schemas import (
    INTERVAL_SECONDS,
    LatencyPercentiles,
    ModelDetail,
    ModelInfo,
    ModelPricing,
    ModelUsage,
    UsageInterval,
    UsagePoint,
)
from observatory_api.query import TimeWindow, utc

_m = tables.models
_s = tables.spans
MAX_SERIES_POINTS = 2000


class ModelRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        # A connection is held only while a method runs, and always given back.
        self._engine = engine

    async def list_models(self, *, provider: str | None = None) -> list[ModelInfo]:
        stmt = select(_m).order_by(_m.c.provider, _m.c.name)
        if provider is not None:
            stmt = stmt.where(_m.c.provider == provider)
        async with self._engine.connect() as conn:
            return [to_model_info(row) for row in (await conn.execute(stmt)).all()]

    async def get_model(self, provider: str, name: str) -> ModelDetail:
        """The catalogue entry with the first and last time a span used the model."""
        used = and_(_s.c.model == name, _s.c.provider == provider)
        async with self._engine.connect() as conn:
            info = await _catalogue_entry(conn, provider, name)
            seen = select(func.min(_s.c.start_time), func.max(_s.c.start_time)).where(used)
            first_seen, last_seen = (await conn.execute(seen)).one()
        return ModelDetail(
            **{f: getattr(info, f) for f in ModelInfo.__struct_fields__},
            first_seen=_as_utc(first_seen),
            last_seen=_as_utc(last_seen),
        )

    async def model_usage(
        self, provider: str, name: str, *, window: TimeWindow, interval: UsageInterval | None
    ) -> ModelUsage:
        """Totals, exact latency percentiles and (with `interval`) a gap-free series for one model."""
        starts = bucket_starts(window, INTERVAL_SECONDS[interval]) if interval is not None else None
        used = and_(
            _s.c.model == name,
            _s.c.provider == provider,
            _s.c.start_time >= window.start,
            _s.c.start_time < window.end,
        )
        async with self._engine.connect() as conn:
            info = await _catalogue_entry(conn, provider, name)
            totals = (await conn.execute(select(*_usage_columns()).where(used))).one()
            p50, p95, p99 = await percentiles(conn, _s.c.duration_ms, used, [0.5, 0.95, 0.99])
            series = await _series(conn, used, starts, INTERVAL_SECONDS[interval]) if interval and starts else None
        requests = int(totals.requests or 0)
        errors = int(totals.errors or 0)
        return ModelUsage(
            model_id=info.id,
            from_=window.start,
            to=window.end,
            interval=interval,
            requests=requests,
            errors=errors,
            error_rate=errors / requests if requests else None,
            input_tokens=int(totals.input_tokens or 0),
            output_tokens=int(totals.output_tokens or 0),
            total_tokens=int(totals.total_tokens or 0),
            cost_usd=float(totals.cost_usd or 0.0),
            latency_ms=LatencyPercentiles(p50=p50, p95=p95, p99=p99),
            series=series,
        )


async def _catalogue_entry(conn: AsyncConnection, provider: str, name: str) -> ModelInfo:
    row = (await conn.execute(select(_m).where(_m.c.provider == provider, _m.c.name == name))).first()
    if row is None:
        raise NotFound(f"no model {provider}/{name} in the catalogue")
    return to_model_info(row)


async def _series(
    conn: AsyncConnection, used: ColumnElement[bool], starts: list[datetime], seconds: int
) -> list[UsagePoint]:
    bucket = time_bucket(seconds, _s.c.start_time).label("bucket")
    stmt = select(bucket, *_usage_columns()).where(used).group_by(bucket).order_by(bucket)
    found = {_as_utc(row.bucket): row for row in (await conn.execute(stmt)).all()}
    points = []
    for start in starts:
        row = found.get(start)
        points.append(
            UsagePoint(
                time=start,
                requests=int(row.requests) if row else 0,
                errors=int(row.errors or 0) if row else 0,
                input_tokens=int(row.input_tokens or 0) if row else 0,
                output_tokens=int(row.output_tokens or 0) if row else 0,
                cost_usd=float(row.cost_usd or 0.0) if row else 0.0,
            )
        )
    return points


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


def _usage_columns() -> list[Any]:
    return [
        func.count().label("requests"),
        func.sum(case((_s.c.status == "error", 1), else_=0)).label("errors"),
        func.sum(_s.c.input_tokens).label("input_tokens"),
        func.sum(_s.c.output_tokens).label("output_tokens"),
        func.sum(_s.c.total_tokens).label("total_tokens"),
        func.sum(_s.c.cost_usd).label("cost_usd"),
    ]


def to_model_info(row: Any) -> ModelInfo:
    return ModelInfo(
        id=row.id,
        provider=row.provider,
        name=row.name,
        display_name=row.display_name,
        context_window=row.context_window,
        pricing=ModelPricing(
            input_per_mtok=row.input_price_per_mtok,
            output_per_mtok=row.output_price_per_mtok,
            cache_read_per_mtok=row.cache_read_price_per_mtok,
            cache_write_per_mtok=row.cache_write_price_per_mtok,
            reasoning_per_mtok=row.reasoning_price_per_mtok,
        ),
    )


def _as_utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value) if isinstance(value, datetime) else value
