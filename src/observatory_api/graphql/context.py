"""The typed per-request context: the request (and so the principal), settings, repositories, loaders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency
from strawberry.litestar.controller import BaseContext
from strawberry.types import Info

from observatory_api.graphql.budget import RowBudget
from observatory_api.graphql.loaders import Loaders, make_loaders
from observatory_api.logs.repository import LogRepository
from observatory_api.metrics.repository import MetricRepository
from observatory_api.models.repository import ModelRepository
from observatory_api.security.permissions import content_allowed
from observatory_api.sessions.repository import SessionRepository
from observatory_api.settings import Settings
from observatory_api.spans.repository import SpanRepository
from observatory_api.traces.repository import TraceRepository


class GraphQLContext(BaseContext, kw_only=True):
    settings: Settings
    traces: TraceRepository
    spans: SpanRepository
    sessions: SessionRepository
    logs: LogRepository
    models: ModelRepository
    metrics: MetricRepository
    loaders: Loaders
    # Rows read and returned so far (graphql.max_rows), shared by the resolvers and the loaders.
    budget: RowBudget
    allow_content: bool
    # One `now` per request: every model's default `usage` range is the same, so they batch together.
    now: datetime


async def graphql_context(
    request: Request[Any, Any, Any],
    response: NamedDependency[Response[Any]],
    settings: NamedDependency[Settings],
    traces: NamedDependency[TraceRepository],
    spans: NamedDependency[SpanRepository],
    sessions: NamedDependency[SessionRepository],
    logs: NamedDependency[LogRepository],
    models: NamedDependency[ModelRepository],
    metric_repository: NamedDependency[MetricRepository],
) -> GraphQLContext:
    """Through Litestar's DI, like a REST handler's parameters; new loaders for every request."""
    allow_content = content_allowed(request)
    budget = RowBudget(settings.graphql.max_rows)
    return GraphQLContext(
        request=request,
        response=response,
        settings=settings,
        traces=traces,
        spans=spans,
        sessions=sessions,
        logs=logs,
        models=models,
        metrics=metric_repository,
        loaders=make_loaders(
            traces=traces,
            sessions=sessions,
            spans=spans,
            metrics=metric_repository,
            models=models,
            limits=settings.query,
            allow_content=allow_content,
            budget=budget,
        ),
        budget=budget,
        allow_content=allow_content,
        now=datetime.now(UTC),
    )


GraphQLInfo = Info[GraphQLContext, None]
