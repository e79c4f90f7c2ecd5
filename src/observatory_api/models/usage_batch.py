"""The usage of many models over one range at once: the queries of `usage.model_usage`, grouped
by provider and model, so that a list of models costs a constant number of statements (GraphQL
`models { usage }`). Each model's answer equals `model_usage` for it (without `compare_with`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from observatory_api.core.filters import MAX_IN_VALUES
from observatory_api.core.query import TimeWindow
from observatory_api.metrics.catalogue import INTERVALS, MAX_TOP_N
from observatory_api.metrics.plan import MAX_POINTS, Plan, bucket_starts, plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.schemas import MetricQuery, MetricQueryResult, MetricSelection, MetricSeries, Value
from observatory_api.models.schemas import ModelUsage, UsageInterval, UsagePoint

# The selections and conversions of the single-model answer: both answers stay the same.
from observatory_api.models.usage import USAGE_COUNTS, USAGE_TOTALS, usage_answer, usage_counts
from observatory_api.settings import QuerySettings

ModelKey = tuple[str, str]  # (provider, name)
_BY_MODEL = ["model"]  # the canonical model id: one model whoever serves it
# A model without spans in the range: every value empty, as the single-model query gives it.
_EMPTY: dict[str, Value] = {s.alias or s.id: None for s in USAGE_TOTALS}


@dataclass(frozen=True, slots=True)
class UsageRequest:
    """What one batch has in common: everything but the model."""

    window: TimeWindow
    interval: UsageInterval | None
    top_users: int


async def models_usage(
    metrics: MetricRepository,
    models: Sequence[tuple[str, str, str]],
    request: UsageRequest,
    limits: QuerySettings,
) -> dict[ModelKey, ModelUsage]:
    """The usage of each `(model id, provider, name)`, by `(provider, name)`."""
    found: dict[ModelKey, ModelUsage] = {}
    for chunk in _chunks(list(models), _chunk_size(request)):
        found.update(await _chunk_usage(metrics, chunk, request, limits))
    return found


def _chunk_size(request: UsageRequest) -> int:
    # Within the filter's `in` bound and the engine's points bound (series x buckets).
    buckets = len(bucket_starts(request.window, INTERVALS[request.interval])) if request.interval else 1
    return max(1, min(MAX_IN_VALUES, MAX_POINTS // max(buckets, 1)))


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _chunk_usage(
    metrics: MetricRepository, models: list[tuple[str, str, str]], request: UsageRequest, limits: QuerySettings
) -> dict[ModelKey, ModelUsage]:
    used = {"field": "model", "op": "in", "value": sorted({model_id for model_id, _, _ in models})}

    async def run(selections: list[MetricSelection], group_by: list[str], **extra: Any) -> tuple[Plan, Any]:
        body = MetricQuery(
            metrics=selections,
            filter=used,
            group_by=group_by,
            from_=request.window.start,
            to=request.window.end,
            source="raw",
            **extra,
        )
        plan = plan_query(body, limits, allow_content=False)
        return plan, await metrics.query(plan)

    main_plan, main = await run(USAGE_TOTALS, _BY_MODEL, interval=request.interval)
    _, environments = await run(USAGE_COUNTS, [*_BY_MODEL, "environment"])
    _, users = await run(USAGE_COUNTS, [*_BY_MODEL, "user_id"], order_by="-cost_usd", limit=MAX_TOP_N)
    totals = {_key(s): s for s in main.series}
    by_environment = _by_model(environments)
    top_users = _by_model(users)
    found: dict[ModelKey, ModelUsage] = {}
    for model_id, provider, name in models:
        key = (provider, name)
        series_key = (model_id,)
        users_of = top_users.get(series_key, [])
        used_in_range = series_key in totals and bool(totals[series_key].totals["requests"])
        if len(users.series) == MAX_TOP_N and len(users_of) < request.top_users and used_in_range:
            # The shared top-N was cut: this model's users may lie beyond it, ask for them alone.
            users_of = await _top_users_of(metrics, model_id, request, limits)
        found[key] = _usage(
            model_id,
            request,
            totals.get(series_key),
            main_plan,
            by_environment.get(series_key, []),
            users_of[: request.top_users],
        )
    return found


async def _top_users_of(
    metrics: MetricRepository, model_id: str, request: UsageRequest, limits: QuerySettings
) -> list[MetricSeries]:
    used = {"field": "model", "op": "eq", "value": model_id}
    body = MetricQuery(
        metrics=USAGE_COUNTS,
        filter=used,
        group_by=[*_BY_MODEL, "user_id"],
        from_=request.window.start,
        to=request.window.end,
        source="raw",
        order_by="-cost_usd",
        limit=request.top_users,
    )
    return list((await metrics.query(plan_query(body, limits, allow_content=False))).series)


def _key(series: MetricSeries) -> tuple[str]:
    return (str(series.group["model"]),)


def _by_model(result: MetricQueryResult) -> dict[tuple[str], list[MetricSeries]]:
    # The engine's order (by group, or by the order value) holds within each model.
    grouped: dict[tuple[str], list[MetricSeries]] = defaultdict(list)
    for series in result.series:
        grouped[_key(series)].append(series)
    return grouped


def _usage(
    model_id: str,
    request: UsageRequest,
    main: MetricSeries | None,
    plan: Plan,
    environments: list[MetricSeries],
    users: list[MetricSeries],
) -> ModelUsage:
    totals = main.totals if main is not None else _EMPTY
    series = None
    if request.interval is not None:
        if main is not None and main.points is not None:
            series = [UsagePoint(time=p.time, **usage_counts(p.values)) for p in main.points]
        else:
            series = [UsagePoint(time=start, **usage_counts(_EMPTY)) for start in plan.buckets]
    return usage_answer(model_id, request.window, request.interval, totals, series, environments, users)
