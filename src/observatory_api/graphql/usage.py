"""A model's usage as GraphQL types, and `compareWith`: the same tokens priced as another model."""

from __future__ import annotations

from datetime import datetime

import strawberry
from msgspec import to_builtins
from strawberry.scalars import JSON

from observatory_api.core.errors import InvalidInput
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.convert import from_struct
from observatory_api.graphql.enums import Interval
from observatory_api.graphql.loaders import ComparedUsageKey
from observatory_api.models.schemas import ModelUsage as ModelUsageStruct
from observatory_api.models.schemas import UsageComparison as UsageComparisonStruct
from observatory_api.models.usage_batch import UsageRequest

MAX_COMPARE_WITH = 300  # the bound of REST's `compare_with`


@strawberry.type(
    description="The range's tokens priced at another model's list prices (`compareWith`). `pricing` says "
    "how: `price_at_span_time`, each span's tokens at the prices each model had when the span started "
    "(the first known price for spans before a model's first price)."
)
class UsageComparison:
    model_id: str = strawberry.field(description="The `compareWith` model.")
    cost: float = strawberry.field(description="USD: the tokens at the `compareWith` model's prices.")
    current_model_list_cost: float = strawberry.field(
        description="USD: the same tokens at this model's list prices, the like-for-like baseline."
    )
    difference: float = strawberry.field(description="USD: `cost` minus `currentModelListCost`.")
    ratio: float | None = strawberry.field(description="`cost` over `currentModelListCost`; null when that is 0.")
    pricing: str

    @classmethod
    def of(cls, comparison: UsageComparisonStruct) -> UsageComparison:
        return from_struct(cls, comparison)


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
    comparison: UsageComparison | None = strawberry.field(description="Only with `compareWith`.")

    @classmethod
    def of(cls, usage: ModelUsageStruct) -> ModelUsage:
        return from_struct(
            cls,
            usage,
            interval=Interval(usage.interval) if usage.interval else None,
            latency=to_builtins(usage.latency_ms),
            series=to_builtins(usage.series),
            by_environment=to_builtins(usage.by_environment),
            top_users=to_builtins(usage.top_users),
            comparison=UsageComparison.of(usage.comparison) if usage.comparison else None,
        )


async def compared_usage(
    info: GraphQLInfo, provider: str, name: str, request: UsageRequest, compare_with: str
) -> ModelUsageStruct:
    """The REST answer with `compare_with` (one per model: the batch does not price comparisons)."""
    if not 1 <= len(compare_with) <= MAX_COMPARE_WITH:
        raise InvalidInput.field("compareWith", f"must be 1 to {MAX_COMPARE_WITH} characters", "argument")
    key = ComparedUsageKey(provider=provider, name=name, request=request, compare_with=compare_with)
    try:
        return await info.context.loaders.compared_usage.load(key)
    except InvalidInput as error:
        if error.errors and error.errors[0].field == "compare_with":
            raise InvalidInput.field("compareWith", error.errors[0].reason, "argument") from None
        raise
