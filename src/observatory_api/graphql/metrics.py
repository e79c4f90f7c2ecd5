"""The metric catalogue, `metricQuery` (as `POST /api/v1/metrics/query`) and `metric` (as
`GET /api/v1/metrics/{id}`), answered by the same service functions as REST."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from observatory_api.core.errors import NotFound
from observatory_api.core.query import check_plain
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.convert import from_struct
from observatory_api.graphql.enums import ANY_SOURCE, Aggregation, MetricInterval, MetricSource, SpanKind, SpanStatus
from observatory_api.graphql.resolver import resolver
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.schemas import MetricDefinition as MetricDefinitionStruct
from observatory_api.metrics.schemas import MetricQuery, MetricSelection
from observatory_api.metrics.schemas import MetricValue as MetricValueStruct
from observatory_api.metrics.values import catalogue, checked_metric_value

FROM = strawberry.argument(name="from", description="Default: `to` minus 24 hours.")


@strawberry.type(description="A metric of the catalogue.")
class MetricDefinition:
    id: str
    description: str
    unit: str
    aggregations: list[Aggregation]
    default_aggregation: Aggregation
    dimensions: list[str]
    rollup_aggregations: list[Aggregation]

    @classmethod
    def of(cls, m: MetricDefinitionStruct) -> MetricDefinition:
        return from_struct(
            cls,
            m,
            aggregations=[Aggregation(a) for a in m.aggregations],
            default_aggregation=Aggregation(m.default_aggregation),
            dimensions=list(m.dimensions),
            rollup_aggregations=[Aggregation(a) for a in m.rollup_aggregations],
        )


@strawberry.type(description="Every metric, the intervals, and the dimensions that group only as a top-N.")
class MetricCatalogue:
    metrics: list[MetricDefinition]
    intervals: list[MetricInterval]
    top_n_dimensions: list[str]


@strawberry.input(description="One value to compute (see `POST /api/v1/metrics/query`).")
class MetricSelectionInput:
    id: str
    aggregation: Aggregation | None = None
    alias: str | None = None


@strawberry.input(description="The body of `POST /api/v1/metrics/query`, with the same meaning.")
class MetricQueryInput:
    metrics: list[MetricSelectionInput]
    group_by: list[str] = strawberry.field(default_factory=list)
    filter: JSON | None = strawberry.field(default=None, description="The boolean filter language of search.")
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
    interval: MetricInterval | None = None
    order_by: str | None = None
    limit: int | None = None
    source: MetricSource = ANY_SOURCE


@strawberry.type
class MetricPoint:
    time: datetime
    values: JSON


@strawberry.type
class MetricSeries:
    group: JSON
    points: list[MetricPoint] | None
    totals: JSON


@strawberry.type
class MetricQueryResult:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    interval: MetricInterval | None
    source: str
    series: list[MetricSeries]
    totals: JSON


@strawberry.input(description="Keep only spans with these values (the filters of `GET /api/v1/metrics/{id}`).")
class MetricValueFilter:
    provider: str | None = None
    model: str | None = None
    service: str | None = None
    environment: str | None = None
    status: SpanStatus | None = None
    kind: SpanKind | None = None
    finish_reason: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tag: str | None = None

    def given(self) -> dict[str, str | None]:
        """By dimension name, checked as the other filters are (argument names in the errors)."""
        plain = {
            "provider": ("provider", self.provider),
            "model": ("model", self.model),
            "service": ("service", self.service),
            "environment": ("environment", self.environment),
            "finish_reason": ("finishReason", self.finish_reason),
            "user_id": ("userId", self.user_id),
            "session_id": ("sessionId", self.session_id),
            "tag": ("tag", self.tag),
        }
        given = {name: check_plain(value, field, "filter") for name, (field, value) in plain.items()}
        given["status"] = self.status.value if self.status else None
        given["kind"] = self.kind.value if self.kind else None
        return given


@strawberry.type(description="The value of the equally long period just before the range.")
class PeriodValue:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    value: float | None


@strawberry.type(description="Current minus previous, and that over previous (null when previous is 0 or null).")
class Change:
    absolute: float | None
    relative: float | None


@strawberry.type(description="A metric's value over the range, against the previous period.")
class MetricValue:
    metric: MetricDefinition
    aggregation: Aggregation
    from_: datetime = strawberry.field(name="from")
    to: datetime
    value: float | None
    previous: PeriodValue
    change: Change
    source: str

    @classmethod
    def of(cls, found: MetricValueStruct) -> MetricValue:
        return cls(
            metric=MetricDefinition.of(found.metric),
            aggregation=Aggregation(found.aggregation),
            from_=found.from_,
            to=found.to,
            value=found.value,
            previous=PeriodValue(from_=found.previous.from_, to=found.previous.to, value=found.previous.value),
            change=Change(absolute=found.change.absolute, relative=found.change.relative),
            source=found.source,
        )


@strawberry.type
class MetricQueries:
    @resolver(description="The metric catalogue.")
    def metrics(self) -> MetricCatalogue:
        found = catalogue()
        return MetricCatalogue(
            metrics=[MetricDefinition.of(m) for m in found.data],
            intervals=[MetricInterval(i) for i in found.intervals],
            top_n_dimensions=list(found.top_n_dimensions),
        )

    @resolver(description="Aggregate metrics by group and time bucket, as `POST /api/v1/metrics/query`.")
    async def metric_query(self, info: GraphQLInfo, input: MetricQueryInput) -> MetricQueryResult:
        ctx = info.context
        query = MetricQuery(
            metrics=[
                MetricSelection(id=m.id, aggregation=m.aggregation.value if m.aggregation else None, alias=m.alias)
                for m in input.metrics
            ],
            group_by=list(input.group_by),
            # parse_filter answers a filter that is not an object with a 400 naming `filter`.
            filter=cast("dict[str, Any] | None", input.filter),
            from_=input.from_,
            to=input.to,
            interval=input.interval.value if input.interval else None,
            order_by=input.order_by,
            limit=input.limit,
            source=input.source.value,
        )
        plan = plan_query(query, ctx.settings.query, allow_content=ctx.allow_content)
        ctx.budget.check()
        result = await ctx.metrics.query(plan)
        # Each series and each of its points is a row of the grouped answer.
        ctx.budget.read_and_returned(sum(1 + len(s.points or ()) for s in result.series))
        return MetricQueryResult(
            from_=result.from_,
            to=result.to,
            interval=MetricInterval(result.interval) if result.interval else None,
            source=result.source,
            series=[
                MetricSeries(
                    group=JSON(s.group),
                    points=[MetricPoint(time=p.time, values=JSON(p.values)) for p in s.points]
                    if s.points is not None
                    else None,
                    totals=JSON(s.totals),
                )
                for s in result.series
            ],
            totals=JSON(result.totals),
        )

    @resolver(
        description="One metric over the range against the equally long period just before, as "
        "`GET /api/v1/metrics/{id}`; null when the catalogue has no metric `id`."
    )
    async def metric(
        self,
        info: GraphQLInfo,
        id: str,
        from_: Annotated[datetime | None, FROM] = None,
        to: datetime | None = None,
        aggregation: Annotated[
            Aggregation | None, strawberry.argument(description="Default: the metric's default aggregation.")
        ] = None,
        filter: MetricValueFilter | None = None,
    ) -> MetricValue | None:
        ctx = info.context
        check_plain(id, "id", "argument")
        try:
            found = await checked_metric_value(
                ctx.metrics,
                ctx.settings.query,
                metric_id=id,
                aggregation=aggregation.value if aggregation else None,
                start=from_,
                end=to,
                given=(filter or MetricValueFilter()).given(),
                source="argument",
            )
        except NotFound:
            return None
        return MetricValue.of(found)
