"""The route decorators of the /api/v1 reads: each operation declares its path, id, summary, the
problems it adds to the API's (404 for lookups, 413 for bodies), and the links of its answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Controller, HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Link, Operation

from observatory_api.openapi_docs import api_responses, link, linked

if TYPE_CHECKING:
    from litestar._kwargs import KwargsModel
    from litestar._kwargs.dependencies import DependencyContainer
    from litestar.connection import ASGIConnection
    from litestar.types.internal_types import PathParameterDefinition

# Where an answer leads: a page of traces (listed or searched), of spans, of sessions, a session.
FIRST_TRACE = link("get_trace", "The first trace of the page.", trace_id="data/0/trace_id")
FIRST_SPAN_TRACE = link("get_trace", "The trace of the first span.", trace_id="data/0/trace_id")
FIRST_SESSION = link("get_session", "The first session.", session_id="data/0/session_id")
SESSION_FIRST_TRACE = link("get_trace", "The first trace of the session.", trace_id="traces/0/trace_id")


def inline_sync_dependencies(batches: list[set[DependencyContainer]]) -> list[set[DependencyContainer]]:
    """Litestar's dependency batches with each plain function provider in a batch of its own.

    Litestar resolves a batch of several dependencies in an anyio task group, one task each, even
    when each is a plain function that returns without awaiting: 50-80 µs a request for the two
    or three providers of a read, more than the providers' own work. A batch's dependencies do
    not depend on each other, so resolving them one after the other gives the same values; those
    that await (coroutines, sync providers run in a thread) keep their batch and its task group.
    """
    resolved: list[set[DependencyContainer]] = []
    for batch in batches:
        inline = sorted((d for d in batch if d.provide.has_sync_callable), key=lambda d: d.key)
        resolved.extend({dependency} for dependency in inline)
        if rest := {d for d in batch if not d.provide.has_sync_callable}:
            resolved.append(rest)
    return resolved


class ReadRouteHandler(HTTPRouteHandler):
    """The route handler of the /api/v1 reads: Litestar's, with plain function providers resolved
    inline (`inline_sync_dependencies`) and the guards given the handler itself."""

    def create_kwargs_model(self, path_parameters: dict[str, PathParameterDefinition]) -> KwargsModel:
        model = super().create_kwargs_model(path_parameters)
        model.dependency_batches = inline_sync_dependencies(model.dependency_batches)
        return model

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        # Litestar hands each guard a copy of the handler (~12 µs a request), in case a guard
        # changes it; the API's guards (security.permissions.requires) read the principal only.
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]  # resolve_guards made each one async


def api_get(
    path: str, operation_id: str, summary: str, *problems: int, cache: bool = False, **links: Link
) -> ReadRouteHandler:
    """A GET operation; `cache=True` keeps its answers in the response cache."""
    return ReadRouteHandler(
        path,
        http_method=HttpMethod.GET,
        operation_id=operation_id,
        summary=summary,
        responses=api_responses(*problems),
        operation_class=linked(**links) if links else Operation,
        cache=cache,
    )


def api_post(path: str, operation_id: str, summary: str, *problems: int, **links: Link) -> ReadRouteHandler:
    """A POST that reads (a query too large or too structured for a query string): it answers 200."""
    return ReadRouteHandler(
        path,
        http_method=HttpMethod.POST,
        operation_id=operation_id,
        summary=summary,
        status_code=200,
        responses=api_responses(*problems),
        operation_class=linked(**links) if links else Operation,
    )


class ResourceController(Controller):
    """The controller of one /api/v1 resource: its OpenAPI tag is its path (`/traces`: `traces`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.tags = [cls.path.strip("/")]
