"""The model catalogue: `models`, `model(id)`, and each model's first/last use and usage (batched)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from observatory_api.core.errors import InvalidInput, NotFound
from observatory_api.core.query import check_plain, resolve_window
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.convert import from_struct, mirrored
from observatory_api.graphql.enums import Interval
from observatory_api.graphql.loaders import UsageKey
from observatory_api.graphql.resolver import resolver
from observatory_api.graphql.usage import ModelUsage, compared_usage
from observatory_api.models import schemas as models
from observatory_api.models.schemas import ModelInfo
from observatory_api.models.usage_batch import UsageRequest

FROM = strawberry.argument(name="from", description="Default: `to` minus 24 hours.")
MAX_TOP_USERS = 1000
COMPARE_WITH = (
    "`provider/model`: adds `comparison`, the same tokens priced at both models' list prices in effect "
    "when each span started. Answered per model, not in the batch of the other models' usage."
)


@strawberry.type(description="List prices in USD per million tokens.")
@mirrored(models.ModelPricing)
class ModelPricing:
    pass


@strawberry.type(description="A model of the catalogue (id `provider/name`).")
@mirrored(ModelInfo)
class Model:
    id: str
    provider: str
    name: str
    pricing: ModelPricing

    @classmethod
    def of(cls, model: ModelInfo) -> Model:
        return from_struct(cls, model, pricing=from_struct(ModelPricing, model.pricing))

    @resolver(description="When a span first used the model; null when none has.")
    async def first_seen(self, info: GraphQLInfo) -> datetime | None:
        return (await info.context.loaders.model_seen.load((self.provider, self.name)))[0]

    @resolver(description="When a span last used the model; null when none has.")
    async def last_seen(self, info: GraphQLInfo) -> datetime | None:
        return (await info.context.loaders.model_seen.load((self.provider, self.name)))[1]

    @resolver(
        description="The model names as sent seen under this model (dated snapshots, the name asked "
        "for, prefixed names), as `snapshots` of `GET /api/v1/models/{id}`."
    )
    async def snapshots(self, info: GraphQLInfo) -> list[str]:
        return await info.context.loaders.model_snapshots.load(f"{self.provider}/{self.name}")

    @resolver(
        description="Requests, tokens, cost, errors and latency of this model over the range, as "
        "`GET /api/v1/models/{id}/usage`. Loaded for all the listed models at once (except with `compareWith`)."
    )
    async def usage(
        self,
        info: GraphQLInfo,
        from_: Annotated[datetime | None, FROM] = None,
        to: datetime | None = None,
        interval: Interval | None = None,
        top_users: Annotated[int, strawberry.argument(description="Users in `topUsers` (by cost).")] = 10,
        compare_with: Annotated[str | None, strawberry.argument(description=COMPARE_WITH)] = None,
    ) -> ModelUsage:
        ctx = info.context
        if not 1 <= top_users <= MAX_TOP_USERS:
            raise InvalidInput.field("topUsers", f"must be between 1 and {MAX_TOP_USERS}", "argument")
        request = UsageRequest(
            window=resolve_window(from_, to, ctx.settings.query, now=ctx.now),
            interval=interval.value if interval else None,
            top_users=top_users,
        )
        if compare_with is not None:
            return ModelUsage.of(await compared_usage(info, self.provider, self.name, request, compare_with))
        usage = await ctx.loaders.model_usage.load(UsageKey(self.id, self.provider, self.name, request))
        return ModelUsage.of(usage)


@strawberry.type
class ModelQueries:
    @resolver(description="The model catalogue, optionally of one provider.")
    async def models(self, info: GraphQLInfo, provider: str | None = None) -> list[Model]:
        check_plain(provider, "provider", "argument")
        info.context.budget.check()
        found = await info.context.models.list_models(provider=provider)
        info.context.budget.read_and_returned(len(found))
        return [Model.of(m) for m in found]

    @resolver(description="One model by id `provider/name`; null when not in the catalogue.")
    async def model(self, info: GraphQLInfo, id: str) -> Model | None:
        check_plain(id, "id", "argument")
        provider, _, name = id.partition("/")
        info.context.budget.check()
        try:
            detail = await info.context.models.get_model(provider, name)
        except NotFound:
            return None
        info.context.budget.read_and_returned(1)
        # get_model read first and last use already: `firstSeen` and `lastSeen` need no statement.
        info.context.loaders.model_seen.prime((provider, name), (detail.first_seen, detail.last_seen))
        info.context.loaders.model_snapshots.prime(detail.id, detail.snapshots)
        return Model.of(detail)
