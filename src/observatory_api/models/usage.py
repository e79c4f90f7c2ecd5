"""A model's usage, answered by the metric engine: totals, exact latency percentiles, a series,
breakdowns by environment and by user, and the same usage priced as another model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import TypedDict, Unpack

from observatory_api.core.query import TimeWindow
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.schemas import MetricQuery, MetricQueryResult, MetricSelection, MetricSeries, Value
from observatory_api.models.pricing import PricePeriod, price_in_effect, price_usage
from observatory_api.models.schemas import (
    LatencyPercentiles,
    ModelInfo,
    ModelUsage,
    UsageBreakdown,
    UsageComparison,
    UsageInterval,
    UsagePoint,
)
from observatory_api.settings import QuerySettings


def _sum(id: str, alias: str | None = None) -> MetricSelection:
    return MetricSelection(id=id, aggregation="sum", alias=alias or id)


_TOKENS = [_sum("input_tokens"), _sum("output_tokens")]
_CACHE_AND_REASONING = [
    _sum("cache_read_input_tokens", "cache_read"),
    _sum("cache_creation_input_tokens", "cache_write"),
    _sum("reasoning_output_tokens", "reasoning"),
]
_PRICED_TOKENS = [*_TOKENS, *_CACHE_AND_REASONING]
USAGE_COUNTS = [
    MetricSelection(id="request_count", alias="requests"),
    MetricSelection(id="error_count", alias="errors"),
    *_TOKENS,
    _sum("cost_usd"),
]
USAGE_TOTALS = [
    *USAGE_COUNTS,
    _sum("total_tokens"),
    *_CACHE_AND_REASONING,
    *(MetricSelection(id="latency_ms", aggregation=p, alias=p) for p in ("p50", "p95", "p99")),
    MetricSelection(id="unpriced_calls", alias="unpriced_calls"),
]


@dataclass(frozen=True, slots=True)
class ComparedModels:
    """The price periods of the model whose usage is asked for, and of the `compare_with` model."""

    this: Sequence[PricePeriod]
    other_id: str
    other: Sequence[PricePeriod]


Run = Callable[..., Awaitable[MetricQueryResult]]


class _QueryOptions(TypedDict, total=False):
    """What a usage query sets of a MetricQuery besides its metrics, filter and range."""

    interval: str | None
    group_by: list[str]
    order_by: str | None
    limit: int | None


async def model_usage(
    metrics: MetricRepository,
    info: ModelInfo,
    *,
    window: TimeWindow,
    interval: UsageInterval | None,
    limits: QuerySettings,
    top_users: int,
    compare_with: ComparedModels | None,
) -> ModelUsage:
    """Usage of `info` over `window`. Read from raw spans: the latency percentiles are exact."""
    # The canonical model id: every snapshot and every provider serving it (core.canonical_models).
    used = _eq("model", info.id)

    async def run(
        selections: list[MetricSelection],
        start: datetime | None = None,
        end: datetime | None = None,
        **extra: Unpack[_QueryOptions],
    ) -> MetricQueryResult:
        body = MetricQuery(
            metrics=selections,
            filter=used,
            from_=start or window.start,
            to=end or window.end,
            source="raw",
            **extra,
        )
        return await metrics.query(plan_query(body, limits, allow_content=False))

    main = await run(USAGE_TOTALS, interval=interval)
    environments = await run(USAGE_COUNTS, group_by=["environment"])
    users = await run(USAGE_COUNTS, group_by=["user_id"], order_by="-cost_usd", limit=top_users)
    totals = main.totals
    series = None
    if interval is not None:
        series = [UsagePoint(time=p.time, **usage_counts(p.values)) for p in main.series[0].points or []]
    comparison = await _comparison(run, window, compare_with, totals) if compare_with is not None else None
    return usage_answer(
        info.id, window, interval, totals, series, environments.series, users.series, comparison=comparison
    )


def usage_answer(
    model_id: str,
    window: TimeWindow,
    interval: UsageInterval | None,
    totals: dict[str, Value],
    series: list[UsagePoint] | None,
    environments: Sequence[MetricSeries],
    users: Sequence[MetricSeries],
    *,
    comparison: UsageComparison | None = None,
) -> ModelUsage:
    """The usage answer from the engine's results: REST, and GraphQL's batched path, build it here."""
    requests, errors = int(totals["requests"] or 0), int(totals["errors"] or 0)
    return ModelUsage(
        model_id=model_id,
        from_=window.start,
        to=window.end,
        interval=interval,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else None,
        input_tokens=int(totals["input_tokens"] or 0),
        output_tokens=int(totals["output_tokens"] or 0),
        total_tokens=int(totals["total_tokens"] or 0),
        cost_usd=float(totals["cost_usd"] or 0.0),
        unpriced_calls=int(totals.get("unpriced_calls") or 0),
        latency_ms=LatencyPercentiles(
            p50=optional_float(totals["p50"]), p95=optional_float(totals["p95"]), p99=optional_float(totals["p99"])
        ),
        series=series,
        by_environment=[usage_breakdown(s.group["environment"], s.totals) for s in environments],
        top_users=[usage_breakdown(s.group["user_id"], s.totals) for s in users],
        comparison=comparison,
    )


def _eq(field: str, value: str) -> dict[str, str]:
    return {"field": field, "op": "eq", "value": value}


def optional_float(value: Value) -> float | None:
    return None if value is None else float(value)


class UsageCounts(TypedDict):
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


def usage_counts(values: dict[str, Value]) -> UsageCounts:
    return {
        "requests": int(values["requests"] or 0),
        "errors": int(values["errors"] or 0),
        "input_tokens": int(values["input_tokens"] or 0),
        "output_tokens": int(values["output_tokens"] or 0),
        "cost_usd": float(values["cost_usd"] or 0.0),
    }


def usage_breakdown(key: str | None, values: dict[str, Value]) -> UsageBreakdown:
    return UsageBreakdown(key=key, **usage_counts(values))


async def _comparison(
    run: Run, window: TimeWindow, models: ComparedModels, totals: dict[str, Value]
) -> UsageComparison:
    """The range's token usage priced at both models' list prices (cache and reasoning tokens at
    their own prices), so the difference compares like with like. Each span is priced at the
    prices in effect when it started: the range is cut where either model's price changed, and
    each piece's tokens are priced at that piece's prices (one query per piece; none when no
    price changed within the range). Spans before a model's first known price get its first price:
    a comparison is a what-if, and the first price is the best estimate there is."""
    cuts = sorted(
        {p.effective_from for p in (*models.this, *models.other) if window.start < p.effective_from < window.end}
    )
    pieces = [(window.start, totals)]
    if cuts:
        edges = [window.start, *cuts, window.end]
        pieces = [(start, (await run(_PRICED_TOKENS, start, end)).totals) for start, end in pairwise(edges)]
    current = alternative = 0.0
    for start, values in pieces:
        usage = _usage(values)
        current += _price(models.this, start, usage)
        alternative += _price(models.other, start, usage)
    return UsageComparison(
        model_id=models.other_id,
        cost_usd=alternative,
        current_model_list_cost_usd=current,
        difference_usd=alternative - current,
        ratio=alternative / current if current else None,
        pricing="price_at_span_time",
    )


def _usage(values: dict[str, Value]) -> dict[str, int]:
    """The token counts `price_usage` takes (named as the metrics), from the sums `_PRICED_TOKENS` selects."""
    return {s.id: int(values[s.alias or s.id] or 0) for s in _PRICED_TOKENS}


def _price(periods: Sequence[PricePeriod], when: datetime, usage: dict[str, int]) -> float:
    prices = price_in_effect(periods, when, earliest_before_first=True)
    return price_usage(prices, **usage) if prices is not None else 0.0
