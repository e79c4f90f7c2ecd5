"""Query fields for the model catalogue, model usage, the metric catalogue and metric queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from msgspec import to_builtins
from strawberry.scalars import JSON

from observatory_api.errors import InvalidInput, NotFound
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.enums import Aggregation, Interval, MetricInterval, MetricSource
from observatory_api.metrics.plan import plan_query
from observatory_api.metrics.schemas import MetricQuery, MetricSelection
from observatory_api.metrics.values import catalogue
from observatory_api.models.schemas import ModelDetail, ModelInfo
from observatory_api.query import check_plain, resolve_window

FROM = strawberry.argument(name="from", description="Default: `to` minus 24 hours.")


@strawberry.type(description="List prices in USD per million tokens.")
class ModelPricing:
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None
    cache_write_per_mtok: float | None
    reasoning_per_mtok: float | None


@strawberry.type(description="Usage over the range, with a series by `interval` when one is given.")
class ModelUsage:
    model_id: str
    from_: datetime = strawberry.field(name="from")
    to: datetime
    interval: Interval | None
    requests: int
    errors: int
    error_rate: float | None
    input_tokens: int
    output_tokens: int
    token_count: int
    cost: float
    latency: JSON = strawberry.field(description="Milliseconds: `{p50, p95, p99}`.")
    series: JSON | None = strawberry.field(description="`[{time, requests, errors, input_tokens, ...}]`.")
    by_environment: JSON
    top_users: JSON
    comparison: JSON | None


@strawberry.type(description="A model of the catalogue (id `provider/name`).")
class Model:
    id: str
    provider: str
    name: str
    display_name: str
    context_window: int | None
    pricing: ModelPricing
    first_seen: datetime | None = strawberry.field(description="Only filled by `model(id)`.")
    last_seen: datetime | None = strawberry.field(description="Only filled by `model(id)`.")

    @classmethod
    def of(cls, model: ModelInfo) -> Model:
        detail = model if isinstance(model, ModelDetail) else None
        return cls(
            id=model.id,
            provider=model.provider,
            name=model.name,
            display_name=model.display_name,
            context_window=model.context_window,
            pricing=ModelPricing(**strawberry_fields(model.pricing)),
            first_seen=detail.first_seen if detail else None,
            last_seen=detail.last_seen if detail else None,
        )

    @strawberry.field(description="Requests, tokens, cost, errors and latency of this model over the range.")
    async def usage(
        self,
        info: GraphQLInfo,
        from_: Annotated[datetime | None, FROM] = None,
        to: datetime | None = None,
        interval: Interval | None = None,
        top_users: int = 10,
    ) -> ModelUsage:
        ctx = info.context
        if not 1 <= top_users <= 1000:
            raise InvalidInput.field("topUsers", "must be between 1 and 1000", "argument")
        usage = await ctx.models.model_usage(
            self.provider,
            self.name,
            window=resolve_window(from_, to, ctx.settings.query),
            interval=interval.value if interval else None,  # type: ignore[arg-type]
            limits=ctx.settings.query,
            top_users=top_users,
        )
        return ModelUsage(
            model_id=usage.model_id,
            from_=usage.from_,
            to=usage.to,
            interval=Interval(usage.interval) if usage.interval else None,
            requests=usage.requests,
            errors=usage.errors,
            error_rate=usage.error_rate,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            token_count=usage.total_tokens,
            cost=usage.cost_usd,
            latency=to_builtins(usage.latency_ms),
            series=to_builtins(usage.series),
            by_environment=to_builtins(usage.by_environment),
            top_users=to_builtins(usage.top_users),
            comparison=to_builtins(usage.comparison),
        )


def strawberry_fields(struct: object) -> dict[str, object]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}  # type: ignore[attr-defined]


@strawberry.type(description="A metric of the catalogue.")
class MetricDefinition:
    id: str
    description: str
    unit: str
    aggregations: list[Aggregation]
    default_aggregation: Aggregation
    dimensions: list[str]
    rollup_aggregations: list[Aggregation]


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
    source: MetricSource = MetricSource.AUTO


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


@strawberry.type
class CatalogueQueries:
    @strawberry.field(description="The model catalogue, optionally of one provider.")
    async def models(self, info: GraphQLInfo, provider: str | None = None) -> list[Model]:
        check_plain(provider, "provider", "argument")
        return [Model.of(m) for m in await info.context.models.list_models(provider=provider)]

    @strawberry.field(description="One model by id `provider/name`; null when not in the catalogue.")
    async def model(self, info: GraphQLInfo, id: str) -> Model | None:
        check_plain(id, "id", "argument")
        provider, _, name = id.partition("/")
        try:
            return Model.of(await info.context.models.get_model(provider, name))
        except NotFound:
            return None

    @strawberry.field(description="The metric catalogue.")
    def metrics(self) -> MetricCatalogue:
        found = catalogue()
        return MetricCatalogue(
            metrics=[
                MetricDefinition(
                    id=m.id,
                    description=m.description,
                    unit=m.unit,
                    aggregations=[Aggregation(a) for a in m.aggregations],
                    default_aggregation=Aggregation(m.default_aggregation),
                    dimensions=list(m.dimensions),
                    rollup_aggregations=[Aggregation(a) for a in m.rollup_aggregations],
                )
                for m in found.data
            ],
            intervals=[MetricInterval(i) for i in found.intervals],
            top_n_dimensions=list(found.top_n_dimensions),
        )

    @strawberry.field(description="Aggregate metrics by group and time bucket, as `POST /api/v1/metrics/query`.")
    async def metric_query(self, info: GraphQLInfo, input: MetricQueryInput) -> MetricQueryResult:
        ctx = info.context
        query = MetricQuery(
            metrics=[
                MetricSelection(id=m.id, aggregation=m.aggregation.value if m.aggregation else None, alias=m.alias)
                for m in input.metrics
            ],
            group_by=list(input.group_by),
            filter=input.filter,
            from_=input.from_,
            to=input.to,
            interval=input.interval.value if input.interval else None,
            order_by=input.order_by,
            limit=input.limit,
            source=input.source.value,  # type: ignore[arg-type]
        )
        result = await ctx.metrics.query(plan_query(query, ctx.settings.query, allow_content=ctx.allow_content))
        return MetricQueryResult(
            from_=result.from_,
            to=result.to,
            interval=MetricInterval(result.interval) if result.interval else None,
            source=result.source,
            series=[
                MetricSeries(
                    group=s.group,
                    points=[MetricPoint(time=p.time, values=p.values) for p in s.points]
                    if s.points is not None
                    else None,
                    totals=s.totals,
                )
                for s in result.series
            ],
            totals=result.totals,
        )
