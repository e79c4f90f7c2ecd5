"""The `/graphql` routes: Strawberry's Litestar controller behind the `read` guard, and GraphiQL."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cross_web import HTTPException as StrawberryHTTPError
from litestar import Request, get, post
from litestar.background_tasks import BackgroundTasks
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException, ValidationException
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK
from strawberry.litestar import make_graphql_controller

from observatory_api.core.vocabulary import GRAPHIQL_PATH, GRAPHQL_PATH
from observatory_api.docs_pages.pages import graphiql_page
from observatory_api.graphql.context import graphql_context
from observatory_api.graphql.schema import build_schema
from observatory_api.security.permissions import requires
from observatory_api.settings import Settings

# A request body or `variables` nesting deeper is refused (400): the deepest valid one, a search
# filter at its 8 levels inside `variables`, is about 20 levels deep.
MAX_JSON_DEPTH = 64


async def _accept_graphql_params(_: Request[Any, Any, Any]) -> None:
    # GET carries `query`, `variables` and `operationName`: the app's strict query check does not apply.
    return None


def _no_root_value() -> None:
    return None


def _sub_response() -> Response[Any]:
    # Strawberry copies headers and cookies a resolver sets on this onto the real response.
    return Response({}, background=BackgroundTasks([]))


def graphql_route_handlers(settings: Settings) -> list[Any]:
    if not settings.graphql.enabled:
        return []
    base = make_graphql_controller(
        build_schema(settings.graphql, settings.query),
        path=GRAPHQL_PATH,
        graphql_ide=None,  # served at GRAPHIQL_PATH instead, when enabled
    )

    class GraphQLController(base):  # type: ignore[valid-type,misc]  # a base class made at run time
        guards = [requires("read")]
        before_request = _accept_graphql_params
        include_in_schema = False
        dependencies: ClassVar[dict[str, Provide]] = {
            "context": Provide(graphql_context),
            "root_value": Provide(_no_root_value, sync_to_thread=False),
            "response": Provide(_sub_response, sync_to_thread=False),
        }
        # No subscriptions: no WebSocket route.
        websocket_endpoint = None

        def decode_json(self, data: str | bytes) -> object:
            # The body and GET's `variables`: a 2,000-level nesting is the client's mistake, not a 500.
            try:
                value = json.loads(data)
            except RecursionError:
                value = None
                too_deep = True
            else:
                too_deep = nests_deeper_than(value, MAX_JSON_DEPTH)
            if too_deep:
                raise StrawberryHTTPError(400, f"the JSON nests more than {MAX_JSON_DEPTH} levels deep")
            return value

        async def execute_request(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response[Any]:
            try:
                response: Response[Any] = await self.run(request, context=context, root_value=root_value)
                return response
            except StrawberryHTTPError as error:
                # Strawberry (through cross_web) answers these in plain text: use the app's problem+json.
                raise _http_problem(request, error) from None

        async def _handle(
            self,
            request: Request[Any, Any, Any],
            context: NamedDependency[Any],
            root_value: NamedDependency[Any],
            response: NamedDependency[Response[Any]],
        ) -> Response[Any]:
            self.temporal_response = response
            return await self.execute_request(request=request, context=context, root_value=root_value)

        # Strawberry's two handlers, replaced by one function whose dependencies are named as
        # Litestar 2.23+ asks; the decorators are Strawberry's own.
        handle_http_get = get(raises=[ValidationException, NotFoundException])(_handle)
        handle_http_post = post(status_code=HTTP_200_OK)(_handle)

    handlers: list[Any] = [GraphQLController]
    if settings.graphql.playground:
        handlers.append(graphiql_page(GRAPHIQL_PATH, GRAPHQL_PATH))
    return handlers


def nests_deeper_than(value: object, limit: int) -> bool:
    """Whether a decoded JSON value nests more than `limit` arrays and objects (iteratively)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth >= limit:
                return True
            stack.extend((inner, depth + 1) for inner in item)
    return False


def _http_problem(request: Request[Any, Any, Any], error: StrawberryHTTPError) -> HTTPException:
    if request.method == "GET" and error.status_code == 400 and "not allowed" in error.reason:
        # A mutation (or any operation but a query) over GET: GraphQL over HTTP says 405.
        return MethodNotAllowedException(detail="only queries may be sent with GET", headers={"Allow": "POST"})
    return HTTPException(status_code=error.status_code, detail=error.reason)
