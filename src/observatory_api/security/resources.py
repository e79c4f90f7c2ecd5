"""What security reads of the lifespan's resources (`observatory_api.resources.Resources`)."""

from __future__ import annotations

from typing import Protocol

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.redis_client import RedisConnection


class SecurityResources(Protocol):
    @property
    def read_engine(self) -> AsyncEngine:
        """The primary (read-only role): API keys are read there, never on a replica."""
        ...

    @property
    def write_engine(self) -> AsyncEngine | None:
        """The owner engine when ingest is enabled: API-key usage is recorded through it."""
        ...

    @property
    def redis(self) -> RedisConnection | None:
        """The worker's one Redis client: the security store and the response cache use it."""
        ...


def security_resources(state: State) -> SecurityResources:
    resources: SecurityResources = state.resources
    return resources
