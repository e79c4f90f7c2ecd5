"""The schema: the Query type from the feature query mixins, and the safety extensions from settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig

from observatory_api.graphql.errors import error_policy
from observatory_api.graphql.limits import cost_limiter
from observatory_api.graphql.metrics import MetricQueries
from observatory_api.graphql.models import ModelQueries
from observatory_api.graphql.names import SchemaNames
from observatory_api.graphql.queries import SessionQueries, TraceQueries
from observatory_api.graphql.search import SearchQueries
from observatory_api.settings import GraphQLSettings, QuerySettings


@strawberry.type(description="Read-only queries over traces, spans, sessions, logs, models and metrics.")
class Query(TraceQueries, SearchQueries, SessionQueries, ModelQueries, MetricQueries):
    pass


class ObservatorySchema(strawberry.Schema):
    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        # ErrorPolicy logs what it masks, with the request id; the rest are the client's mistakes.
        return None


def build_schema(settings: GraphQLSettings, query: QuerySettings) -> strawberry.Schema:
    policy = error_policy(None)  # one class per schema: its names are set below, once the schema exists
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        policy,
        lambda: QueryDepthLimiter(max_depth=settings.max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        cost_limiter(settings.max_cost, settings.max_rows, query),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    schema = ObservatorySchema(
        query=Query,
        extensions=extensions,
        # Suggestions ("Did you mean ...?") would reveal the schema that disabled introspection hides.
        config=StrawberryConfig(disable_field_suggestions=not settings.introspection),
    )
    if not settings.introspection:
        # So would the other names in validation and variable errors: only the request's own stay.
        policy.hidden_names = SchemaNames(schema._schema)
    return schema


def schema_sdl() -> str:
    """The SDL committed as `schemas/schema.graphql` (the same for every setting)."""
    return build_schema(GraphQLSettings(), QuerySettings()).as_str() + "\n"
