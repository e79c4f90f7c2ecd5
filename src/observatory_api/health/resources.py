"""What the health routes read of the lifespan's resources (`observatory_api.resources.Resources`)."""

from __future__ import annotations

from typing import Protocol

from litestar.datastructures import State
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.replicas import ReadRouter


class HealthResources(Protocol):
    @property
    def read_engine(self) -> AsyncEngine:
        """The primary: its schema must be at `schema_head`."""
        ...

    @property
    def read_router(self) -> ReadRouter: ...

    @property
    def schema_head(self) -> str | None: ...

    @property
    def redis_client(self) -> Redis | None: ...

    @property
    def started_at(self) -> float:
        """`time.monotonic()` when the worker was ready."""
        ...


def health_resources(state: State) -> HealthResources:
    resources: HealthResources = state.resources
    return resources
