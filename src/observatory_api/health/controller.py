"""`/alive`, `/ready` and `/health`: plain routes, outside `/api/v1`, for orchestrators and operators."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from observatory_api import __version__
from observatory_api.core.vocabulary import ALIVE_PATH, HEALTH_PATH, READY_PATH
from observatory_api.db.replicas import ReplicaState
from observatory_api.health.checks import ComponentState, check_database, check_redis
from observatory_api.health.resources import HealthResources, health_resources
from observatory_api.openapi_docs import OPEN, OPTIONAL, problems
from observatory_api.security.permissions import principal_of

Status = Literal["ok", "degraded", "down"]


class Alive(msgspec.Struct):
    status: Literal["alive"]


class Readiness(msgspec.Struct, omit_defaults=True):
    ready: bool
    components: dict[str, ComponentState]
    # Each read replica (docs/replicas.md), when any is configured. They do not decide `ready`:
    # with none in rotation, reads go to the primary.
    replicas: list[ReplicaState] | None = None


class Health(msgspec.Struct, omit_defaults=True):
    """Version, uptime and components are shown to authenticated callers only."""

    status: Status
    version: str | None = None
    uptime_seconds: float | None = None
    components: dict[str, ComponentState] | None = None


class HealthController(Controller):
    tags = ["health"]
    include_in_schema = True

    @get(
        ALIVE_PATH,
        operation_id="alive",
        summary="Liveness (no I/O)",
        responses=problems(400),
        cache=False,
        security=OPEN,
    )
    async def alive(self) -> Alive:
        """Answers as long as the process serves requests; touches nothing else."""
        return Alive(status="alive")

    @get(
        READY_PATH,
        operation_id="ready",
        summary="Readiness",
        responses={**problems(400), 503: ResponseSpec(Readiness, description="Not ready", generate_examples=False)},
        cache=False,
        security=OPEN,
    )
    async def ready(self, state: State) -> Response[Readiness]:
        """200 when the database answers with its schema at head and Redis (if configured) answers; 503 otherwise.

        With read replicas configured, `replicas` shows each one (`host:port`), its state at the last
        check (`ok`, `lagging`, `down`) and its lag in seconds.
        """
        resources = health_resources(state)
        components = await _components(resources)
        ready = all(c.status == "ok" for c in components.values())
        body = Readiness(ready=ready, components=components, replicas=resources.read_router.states() or None)
        return Response(body, status_code=200 if ready else 503)

    @get(
        HEALTH_PATH,
        operation_id="health",
        summary="Health with component detail",
        responses={
            **problems(400),
            503: ResponseSpec(Health, description="The database is down", generate_examples=False),
        },
        cache=False,
        security=OPTIONAL,  # open; an authenticated caller sees the components
    )
    async def health(self, state: State, request: Request[Any, Any, Any]) -> Response[Health]:
        """`ok`, `degraded` (Redis down: the service falls back) or `down` (the database is unusable, 503).

        Without a credential only `status` is shown.
        """
        resources = health_resources(state)
        components = await _components(resources)
        database_ok = components["database"].status == "ok"
        if database_ok and all(c.status == "ok" for c in components.values()):
            status: Status = "ok"
        elif database_ok:
            status = "degraded"
        else:
            status = "down"
        body = Health(
            status=status,
            version=__version__,
            uptime_seconds=round(time.monotonic() - resources.started_at, 3),
            components=components,
        )
        if principal_of(request) is None:
            body = Health(status=status)
        return Response(body, status_code=503 if status == "down" else 200)


async def _components(resources: HealthResources) -> dict[str, ComponentState]:
    components = {"database": await check_database(resources.read_engine, resources.schema_head)}
    if resources.redis_client is not None:
        components["redis"] = await check_redis(resources.redis_client)
    return components
