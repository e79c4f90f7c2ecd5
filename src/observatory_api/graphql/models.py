"""The model catalogue: `models`, `model(id)`, and each model's first/last use and usage (batched)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from msgspec import to_builtins
from strawberry.scalars import JSON

from observatory_api.errors import InvalidInput, NotFound
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.enums import Interval
from observatory_api.graphql.loaders import UsageKey
from observatory_api.metrics.usage_batch import UsageRequest
from observatory_api.models.schemas import ModelInfo
from observatory_api.models.schemas import ModelUsage as ModelUsageStruct
from observatory_api.query import check_plain, resolve_window

FROM = strawberry.argument(name="from", description="Default: `to` minus 24 hours.")
MAX_TOP_USERS = 1000


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

    @classmethod
    def of(cls, usage: ModelUsageStruct) -> ModelUsage:
        return cls(
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
        )


@strawberry.type(description="A model of the catalogue (id `provider/name`).")
class Model:
    id: str
    provider: str
    name: str
    display_name: str
    context_window: int | None
    pricing: ModelPricing

    @classmethod
    def of(cls, model: ModelInfo) -> Model:
        return cls(
            id=model.id,
            provider=model.provider,
            name=model.name,
            display_name=model.display_name,
            context_window=model.context_window,
            pricing=ModelPricing(**strawberry_fields(model.pricing)),
        )

    @strawberry.field(description="When a span first used the model; null when none has.")
    async def first_seen(self, info: GraphQLInfo) -> datetime | None:
        return (await info.context.loaders.model_seen.load((self.provider, self.name)))[0]

    @strawberry.field(description="When a span last used the model; null when none has.")
    async def last_seen(self, info: GraphQLInfo) -> datetime | None:
        return (await info.context.loaders.model_seen.load((self.provider, self.name)))[1]

    @strawberry.field(
        description="Requests, tokens, cost, errors and latency of this model over the range, as "
        "`GET /api/v1/models/{id}/usage`. Loaded for all the listed models at once."
    )
    async def usage(
        self,
        info: GraphQLInfo,
        from_: Annotated[datetime | None, FROM] = None,
        to: datetime | None = None,
        interval: Interval | None = None,
        top_users: Annotated[int, strawberry.argument(description="Users in `topUsers` (by cost).")] = 10,
    ) -> ModelUsage:
        ctx = info.context
        if not 1 <= top_users <= MAX_TOP_USERS:
            raise InvalidInput.field("topUsers", f"must be between 1 and {MAX_TOP_USERS}", "argument")
        request = UsageRequest(
            window=resolve_window(from_, to, ctx.settings.query, now=ctx.now),
            interval=interval.value if interval else None,  # type: ignore[arg-type]
            top_users=top_users,
        )
        usage = await ctx.loaders.model_usage.load(UsageKey(self.id, self.provider, self.name, request))
        return ModelUsage.of(usage)


def strawberry_fields(struct: object) -> dict[str, object]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}  # type: ignore[attr-defined]


@strawberry.type
class ModelQueries:
    @strawberry.field(description="The model catalogue, optionally of one provider.")
    async def models(self, info: GraphQLInfo, provider: str | None = None) -> list[Model]:
        check_plain(provider, "provider", "argument")
        return [Model.of(m) for m in await info.context.models.list_models(provider=provider)]

    @strawberry.field(description="One model by id `provider/name`; null when not in the catalogue.")
    async def model(self, info: GraphQLInfo, id: str) -> Model | None:
        check_plain(id, "id", "argument")
        provider, _, name = id.partition("/")
        try:
            detail = await info.context.models.get_model(provider, name)
        except NotFound:
            return None
        # get_model read first and last use already: `firstSeen` and `lastSeen` need no statement.
        info.context.loaders.model_seen.prime((provider, name), (detail.first_seen, detail.last_seen))
        return Model.of(detail)
