"""The catalogue as the API shows it, and one metric's value against the previous period."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from observatory_api.core.errors import InvalidInput, NotFound
from observatory_api.core.query import EARLIEST, check_plain, resolve_window
from observatory_api.core.vocabulary import SPAN_KINDS, SPAN_STATUSES
from observatory_api.metrics.catalogue import DIMENSIONS, HIGH_CARDINALITY, INTERVALS, METRICS, Metric
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.schemas import (
    Change,
    MetricCatalogue,
    MetricDefinition,
    MetricQuery,
    MetricSelection,
    MetricValue,
    PeriodValue,
    Value,
)
from observatory_api.settings import QuerySettings


def definition(metric: Metric) -> MetricDefinition:
    return MetricDefinition(
        id=metric.id,
        description=metric.description,
        unit=metric.unit,
        aggregations=list(metric.aggregations),
        default_aggregation=metric.default_aggregation,
        dimensions=list(DIMENSIONS),
        rollup_aggregations=[a for a in metric.aggregations if metric.rollup_answers(a)],
    )


def catalogue() -> MetricCatalogue:
    return MetricCatalogue(
        data=[definition(metric) for metric in METRICS.values()],
        intervals=[*INTERVALS, "auto"],
        top_n_dimensions=sorted(HIGH_CARDINALITY),
    )


async def checked_metric_value(
    repository: MetricRepository,
    limits: QuerySettings,
    *,
    metric_id: str,
    aggregation: str | None,
    start: datetime | None,
    end: datetime | None,
    given: Mapping[str, str | None],
    source: str = "query",
) -> MetricValue:
    """`GET /metrics/{id}` (and GraphQL `metric`): check what the client named, then `metric_value`.

    `given` maps dimension names (provider, model, status, ...) to the value a span must have.
    """
    metric = METRICS.get(metric_id)
    if metric is None:
        raise NotFound(f"no metric {metric_id!r}; see GET /api/v1/metrics")
    if aggregation is not None and aggregation not in metric.aggregations:
        allowed = ", ".join(metric.aggregations)
        raise InvalidInput.field("aggregation", f"{aggregation!r} does not apply to {metric_id}; use {allowed}", source)
    for name, choices in (("status", SPAN_STATUSES), ("kind", SPAN_KINDS)):
        value = given.get(name)
        if value is not None and value not in choices:
            raise InvalidInput.field(name, f"must be one of {', '.join(choices)}", source)
    conditions = {name: value for name, value in given.items() if value is not None}
    for name, value in conditions.items():
        check_plain(value, name, source)
    return await metric_value(
        repository,
        limits,
        metric=metric,
        aggregation=aggregation,
        start=start,
        end=end,
        conditions=conditions,
        source=source,
    )


async def metric_value(
    repository: MetricRepository,
    limits: QuerySettings,
    *,
    metric: Metric,
    aggregation: str | None,
    start: datetime | None,
    end: datetime | None,
    conditions: dict[str, str],
    source: str = "query",
) -> MetricValue:
    """`metric` over the window and over the window of equal length just before it; `source` is
    where `start` and `end` came from, for error messages."""
    window = resolve_window(start, end, limits, source=source)
    # Nothing is stored before EARLIEST: the previous period stops there, and is absent (null)
    # when the range starts at it.
    previous_start = max(window.start - (window.end - window.start), EARLIEST)
    selection = MetricSelection(id=metric.id, aggregation=aggregation)
    node = {"and": [{"field": f, "op": "eq", "value": v} for f, v in conditions.items()]} if conditions else None

    async def value_between(a: datetime, b: datetime) -> tuple[Value, str, str]:
        plan = plan_query(MetricQuery(metrics=[selection], filter=node, from_=a, to=b), limits, allow_content=False)
        result = await repository.query(plan)
        (key,) = result.totals
        return result.totals[key], plan.selections[0].aggregation, result.source

    current, chosen, answered_from = await value_between(window.start, window.end)
    previous = None
    if previous_start < window.start:
        previous, _, _ = await value_between(previous_start, window.start)
    absolute = relative = None
    if current is not None and previous is not None:
        absolute = current - previous
        relative = absolute / previous if previous else None
    return MetricValue(
        metric=definition(metric),
        aggregation=chosen,
        from_=window.start,
        to=window.end,
        value=current,
        previous=PeriodValue(from_=previous_start, to=window.start, value=previous),
        change=Change(absolute=absolute, relative=relative),
        source=answered_from,
    )
