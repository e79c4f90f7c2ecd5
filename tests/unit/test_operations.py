"""The /api/v1 route decorators: plain function providers resolved in the request's own task."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.operations import ReadRouteHandler, api_get
from observatory_api.settings import Settings


def test_plain_providers_run_in_the_handlers_task_and_see_each_others_values() -> None:
    tasks: dict[str, asyncio.Task[Any] | None] = {}

    def provide_a() -> int:
        tasks["a"] = asyncio.current_task()
        return 2

    def provide_b() -> int:
        tasks["b"] = asyncio.current_task()
        return 3

    def provide_c(a: NamedDependency[int], b: NamedDependency[int]) -> int:
        tasks["c"] = asyncio.current_task()
        return a * b

    async def provide_d(a: NamedDependency[int]) -> int:
        await asyncio.sleep(0)
        return a + 10

    @api_get("/values", "values", "Values")
    async def values(c: NamedDependency[int], d: NamedDependency[int], b: NamedDependency[int]) -> dict[str, int]:
        tasks["handler"] = asyncio.current_task()
        return {"c": c, "d": d, "b": b}

    dependencies = {
        "a": Provide(provide_a, sync_to_thread=False),
        "b": Provide(provide_b, sync_to_thread=False),
        "c": Provide(provide_c, sync_to_thread=False),
        "d": Provide(provide_d),
    }
    with TestClient(Litestar([values], dependencies=dependencies)) as client:
        response = client.get("/values")
    assert response.status_code == 200
    assert response.json() == {"c": 6, "d": 12, "b": 3}
    # Litestar alone runs a batch of several providers in a task group: a task each.
    assert tasks["a"] is tasks["b"] is tasks["c"] is tasks["handler"]


def test_no_api_read_resolves_plain_providers_in_a_task_group() -> None:
    app = create_app(Settings(environment="test"))
    checked = 0
    for route in app.routes:
        for handler, model in getattr(route, "route_handler_map", {}).values():
            if not isinstance(handler, ReadRouteHandler):
                continue
            checked += 1
            for batch in model.dependency_batches:
                assert len(batch) == 1 or not any(d.provide.has_sync_callable for d in batch), (route.path, batch)
    assert checked >= 10


def test_guards_get_the_handler_itself_and_still_refuse() -> None:
    seen: list[Any] = []

    async def record(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        seen.append(handler)

    async def refuse(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if connection.query_params.get("refuse"):
            raise NotAuthorizedException("refused")

    @api_get("/open", "open_values", "Values")
    async def open_values() -> dict[str, int]:
        return {"a": 1}

    app = Litestar([open_values], guards=[record, refuse])
    with TestClient(app) as client:
        assert client.get("/open").json() == {"a": 1}
        assert client.get("/open", params={"refuse": "1"}).status_code == 401
    registered = next(h for route in app.routes for h, _ in getattr(route, "route_handler_map", {}).values())
    # Litestar alone passes a copy of the handler to each guard, on every request.
    assert seen == [registered, registered]
