"""A model's usage, answered by the metric engine: totals, exact latency percentiles, a series,
breakdowns by environment and by user, and the same usage priced as another model."""

from __future__ import annotations

from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.schemas import MetricQuery, MetricQueryResult, MetricSelection, Value
from observatory_api.models.pricing import ModelPrices, price_usage
from observatory_api.models.schemas import (
    LatencyPercentiles,
    ModelInfo,
    ModelUsage,
    UsageBreakdown,
    UsageComparison,
    UsageInterval,
    UsagePoint,
)
from observatory_api.query import TimeWindow
from observatory_api.settings import QuerySettings

_COUNTS = [
    MetricSelection(id="request_count", alias="requests"),
    MetricSelection(id="error_count", alias="errors"),
    MetricSelection(id="input_tokens", aggregation="sum", alias="input_tokens"),
    MetricSelection(id="output_tokens", aggregation="sum", alias="output_tokens"),
    MetricSelection(id="cost_usd", aggregation="sum", alias="cost_usd"),
]
_TOTALS = [
    *_COUNTS,
    MetricSelection(id="total_tokens", aggregation="sum", alias="total_tokens"),
    MetricSelection(id="cache_read_input_tokens", aggregation="sum", alias="cache_read"),
    MetricSelection(id="cache_creation_input_tokens", aggregation="sum", alias="cache_write"),
    MetricSelection(id="reasoning_output_tokens", aggregation="sum", alias="reasoning"),
    MetricSelection(id="latency_ms", aggregation="p50", alias="p50"),
    MetricSelection(id="latency_ms", aggregation="p95", alias="p95"),
    MetricSelection(id="latency_ms", aggregation="p99", alias="p99"),
]


async def model_usage(
    metrics: MetricRepository,
    info: ModelInfo,
    *,
    window: TimeWindow,
    interval: UsageInterval | None,
    limits: QuerySettings,
    top_users: int,
    compare_with: ModelInfo | None,
) -> ModelUsage:
    """Usage of `info` over `window`. Read from raw spans: the latency percentiles are exact."""
    used = {"and": [_eq("provider", info.provider), _eq("model", info.name)]}

    async def run(selections: list[MetricSelection], **extra: object) -> MetricQueryResult:
        body = MetricQuery(metrics=selections, filter=used, from_=window.start, to=window.end, source="raw", **extra)
        return await metrics.query(plan_query(body, limits))

    main = await run(_TOTALS, interval=interval)
    environments = await run(_COUNTS, group_by=["environment"])
    users = await run(_COUNTS, group_by=["user_id"], order_by="-cost_usd", limit=top_users)
    totals = main.totals
    requests, errors = int(totals["requests"] or 0), int(totals["errors"] or 0)
    series = None
    if interval is not None:
        series = [UsagePoint(time=p.time, **_counts(p.values)) for p in main.series[0].points or []]
    return ModelUsage(
        model_id=info.id,
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
        latency_ms=LatencyPercentiles(p50=_f(totals["p50"]), p95=_f(totals["p95"]), p99=_f(totals["p99"])),
        series=series,
        by_environment=[_breakdown(s.group["environment"], s.totals) for s in environments.series],
        top_users=[_breakdown(s.group["user_id"], s.totals) for s in users.series],
        comparison=_comparison(info, compare_with, totals) if compare_with is not None else None,
    )


def _eq(field: str, value: str) -> dict[str, str]:
    return {"field": field, "op": "eq", "value": value}


def _f(value: Value) -> float | None:
    return None if value is None else float(value)


def _counts(values: dict[str, Value]) -> dict[str, int | float]:
    return {
        "requests": int(values["requests"] or 0),
        "errors": int(values["errors"] or 0),
        "input_tokens": int(values["input_tokens"] or 0),
        "output_tokens": int(values["output_tokens"] or 0),
        "cost_usd": float(values["cost_usd"] or 0.0),
    }


def _breakdown(key: str | None, values: dict[str, Value]) -> UsageBreakdown:
    return UsageBreakdown(key=key, **_counts(values))  # type: ignore[arg-type]


def _prices(info: ModelInfo) -> ModelPrices:
    p = info.pricing
    return ModelPrices(
        input_price_per_mtok=p.input_per_mtok,
        output_price_per_mtok=p.output_per_mtok,
        cache_read_price_per_mtok=p.cache_read_per_mtok,
        cache_write_price_per_mtok=p.cache_write_per_mtok,
        reasoning_price_per_mtok=p.reasoning_per_mtok,
    )


def _comparison(info: ModelInfo, other: ModelInfo, totals: dict[str, Value]) -> UsageComparison:
    """The range's token usage priced at both models' catalogue prices (cache and reasoning
    tokens at their own prices), so the difference compares like with like."""
    usage = {
        "input_tokens": int(totals["input_tokens"] or 0),
        "output_tokens": int(totals["output_tokens"] or 0),
        "cache_read_input_tokens": int(totals["cache_read"] or 0),
        "cache_creation_input_tokens": int(totals["cache_write"] or 0),
        "reasoning_output_tokens": int(totals["reasoning"] or 0),
    }
    current = price_usage(_prices(info), **usage)
    alternative = price_usage(_prices(other), **usage)
    return UsageComparison(
        model_id=other.id,
        cost_usd=alternative,
        current_model_list_cost_usd=current,
        difference_usd=alternative - current,
        ratio=alternative / current if current else None,
    )
