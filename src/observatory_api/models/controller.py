"""ModelController: the catalogue, one model, and its usage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from observatory_api.core.params import IDENT, TIME_FROM, TIME_TO
from observatory_api.core.query import check_plain, resolve_window
from observatory_api.models.repository import ModelRepository
from observatory_api.models.schemas import ModelDetail, ModelList, ModelUsage, UsageInterval
from observatory_api.openapi_docs import link
from observatory_api.operations import ResourceController, api_get
from observatory_api.settings import Settings

PROVIDER = PathParameter(max_length=100, description="Provider part of the model id, e.g. `openai`.")
NAME = PathParameter(max_length=200, description="Model name, e.g. `gpt-4o`.")


class ModelController(ResourceController):
    path = "/models"

    @api_get(
        "/",
        "list_models",
        "List the model catalogue",
        cache=True,
        model=link("get_model", "The first model.", provider="data/0/provider", name="data/0/name"),
        usage=link("get_model_usage", "The usage of the first model.", provider="data/0/provider", name="data/0/name"),
    )
    async def list_models(
        self, models: NamedDependency[ModelRepository], provider: Annotated[str | None, IDENT] = None
    ) -> ModelList:
        """Every model in the catalogue (id `provider/name`) with the prices per million tokens in effect now."""
        return ModelList(data=await models.list_models(provider=check_plain(provider, "provider")))

    @api_get("/{provider:str}/{name:str}", "get_model", "Get a model", 404, cache=True)
    async def get_model(
        self, models: NamedDependency[ModelRepository], provider: Annotated[str, PROVIDER], name: Annotated[str, NAME]
    ) -> ModelDetail:
        """The catalogue entry, the prices in effect now, the price history (oldest first), and when
        spans first and last used it."""
        return await models.get_model(provider, name)

    @api_get("/{provider:str}/{name:str}/usage", "get_model_usage", "Usage of a model", 404, cache=True)
    async def get_model_usage(
        self,
        models: NamedDependency[ModelRepository],
        settings: NamedDependency[Settings],
        provider: Annotated[str, PROVIDER],
        name: Annotated[str, NAME],
        from_: Annotated[datetime | None, TIME_FROM] = None,
        to: Annotated[datetime | None, TIME_TO] = None,
        interval: Annotated[
            UsageInterval | None, QueryParameter(required=False, description="Adds a time series.")
        ] = None,
        top_users: Annotated[
            int, QueryParameter(required=False, ge=1, le=1000, description="Users in `top_users` (by cost).")
        ] = 10,
        compare_with: Annotated[
            str | None,
            QueryParameter(
                required=False,
                max_length=300,
                description="`provider/model`: price the same usage at its prices of each span's time.",
            ),
        ] = None,
    ) -> ModelUsage:
        """Requests, tokens, cost, error rate and exact latency p50/p95/p99 over the range, a
        gap-free series by `interval` when one is given, usage by environment and by the
        `top_users` users with the highest cost, and with `compare_with` the same tokens priced at
        both models' list prices in effect when each span started (`comparison.pricing`)."""
        window = resolve_window(from_, to, settings.query)
        return await models.model_usage(
            provider,
            name,
            window=window,
            interval=interval,
            limits=settings.query,
            top_users=top_users,
            compare_with=compare_with,
        )
