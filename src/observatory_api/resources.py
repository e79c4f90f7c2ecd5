"""What the lifespan opens for a worker, in one typed object handed to what needs it.

`app.state.resources` holds it from start-up to shutdown. Each reader takes the part it needs
through a Protocol of its own (deps.ReadResources, security.resources, health.resources,
observability.setup, ingest.resources), so that none imports this module and its imports; mypy
checks below that `Resources` has what each of them reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.replicas import ReadRouter
from observatory_api.db.trace_chunks import ChunkCatalogue
from observatory_api.deps import ReadResources
from observatory_api.health.resources import HealthResources
from observatory_api.ingest.resources import IngestResources
from observatory_api.metrics.segment_cache import SegmentCache
from observatory_api.observability.setup import ObservedResources
from observatory_api.redis_client import RedisConnection
from observatory_api.security.resources import SecurityResources


@dataclass(frozen=True, slots=True)
class Resources:
    # The primary, read-only role: API keys, tokens and the schema's health.
    read_engine: AsyncEngine
    # REST and GraphQL reads: a healthy replica in turn, else `read_engine`.
    read_router: ReadRouter
    capabilities: DatabaseCapabilities
    schema_head: str | None
    # The worker's one Redis client (rate limits, caches, /ready, tracing); None without Redis.
    redis: RedisConnection | None
    # The write path, when ingest is enabled.
    ingest: IngestResources | None
    # Closed rollup segments kept between metric queries (metrics.segment_cache), when kept.
    metric_segments: SegmentCache | None
    started_at: float
    # TimescaleDB's chunk ranges, read when first needed (trace detail reads a trace's chunk there).
    trace_chunks: ChunkCatalogue = field(default_factory=ChunkCatalogue)

    @property
    def redis_client(self) -> Redis | None:
        return self.redis.client if self.redis is not None else None

    @property
    def write_engine(self) -> AsyncEngine | None:
        return self.ingest.engine if self.ingest is not None else None


def _gives_each_its_part(
    resources: Resources,
) -> tuple[ReadResources, SecurityResources, HealthResources, ObservedResources]:
    # Never called: mypy checks here that `Resources` has what each of those Protocols reads.
    return resources, resources, resources, resources
