"""Dependency providers: settings, the lifespan's resources, the per-request read engine, and the
repositories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Protocol

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.params import IDENT, SPAN_ID, TIME_FROM, TIME_TO, TRACE_ID
from observatory_api.core.query import (
    check_plain,
    check_span_id,
    check_trace_id,
    resolve_window,
)
from observatory_api.core.vocabulary import LogSeverity
from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.replicas import ReadRouter
from observatory_api.db.trace_chunks import ChunkCatalogue
from observatory_api.logs.repository import LogFilters, LogQuery, LogRepository
from observatory_api.metrics.repository import MetricRepository
from observatory_api.metrics.segment_cache import SegmentCache
from observatory_api.models.repository import ModelRepository
from observatory_api.sessions.repository import SessionRepository
from observatory_api.settings import Settings
from observatory_api.spans.params import provide_span_filters
from observatory_api.spans.repository import SpanRepository
from observatory_api.traces.params import provide_list_filters
from observatory_api.traces.repository import TraceRepository


class ReadResources(Protocol):
    """What the read path takes of the lifespan's resources (`observatory_api.resources.Resources`)."""

    @property
    def read_engine(self) -> AsyncEngine: ...

    @property
    def read_router(self) -> ReadRouter: ...

    @property
    def capabilities(self) -> DatabaseCapabilities: ...

    @property
    def metric_segments(self) -> SegmentCache | None: ...

    @property
    def trace_chunks(self) -> ChunkCatalogue: ...


def _read_resources(state: State) -> ReadResources:
    resources: ReadResources = state.resources
    return resources


def provide_read_engine(state: State) -> AsyncEngine:
    """The engine of this request's reads, chosen once per request: a healthy replica in turn, else
    the primary (db/replicas.py)."""
    return _read_resources(state).read_router.engine()


def provide_primary_engine(state: State) -> AsyncEngine:
    """The primary (read-only role), for what must never be read on a replica: export keys."""
    return _read_resources(state).read_engine


def provide_capabilities(state: State) -> DatabaseCapabilities:
    """What the database can do, as the lifespan found at start-up."""
    return _read_resources(state).capabilities


def _read_repository(make: Callable[[AsyncEngine, DatabaseCapabilities], object]) -> Provide:
    """A repository over this request's read engine, told what the database can do."""

    def provide(read_engine: NamedDependency[AsyncEngine], capabilities: NamedDependency[DatabaseCapabilities]) -> Any:
        return make(read_engine, capabilities)

    return Provide(provide, sync_to_thread=False)


def provide_trace_repository(
    read_engine: NamedDependency[AsyncEngine], capabilities: NamedDependency[DatabaseCapabilities], state: State
) -> TraceRepository:
    # Traces and sessions read the same way on every database; on TimescaleDB a trace's lookups
    # are planned for their values (db.custom_plans) and read its chunk (db.trace_chunks).
    timescaledb = capabilities.timescaledb
    chunks = _read_resources(state).trace_chunks if timescaledb else None
    return TraceRepository(read_engine, custom_plans=timescaledb, chunks=chunks)


def provide_metric_repository(
    read_engine: NamedDependency[AsyncEngine], capabilities: NamedDependency[DatabaseCapabilities], state: State
) -> MetricRepository:
    resources = _read_resources(state)
    router = resources.read_router
    # A replica's reads are kept only once it holds the writes invalidated (segment_cache.py).
    return MetricRepository(
        read_engine,
        capabilities,
        segments=resources.metric_segments,
        holds_until=lambda: router.holds_until(read_engine),
    )


def provide_log_query(
    settings: NamedDependency[Settings],
    from_: Annotated[datetime | None, TIME_FROM] = None,
    to: Annotated[datetime | None, TIME_TO] = None,
    severity: Annotated[LogSeverity | None, QueryParameter(required=False)] = None,
    trace_id: Annotated[str | None, TRACE_ID] = None,
    span_id: Annotated[str | None, SPAN_ID] = None,
    service: Annotated[str | None, IDENT] = None,
    q: Annotated[
        str | None, QueryParameter(required=False, min_length=1, max_length=200, description="Text in the log body.")
    ] = None,
) -> LogQuery:
    """The filters of `GET /logs` and `GET /logs/export`, checked, with the time range."""
    if trace_id is not None:
        check_trace_id(trace_id, source="query")
    if span_id is not None:
        check_span_id(span_id)
    check_plain(service, "service")
    filters = LogFilters(severity=severity, trace_id=trace_id, span_id=span_id, service=service, q=q)
    return LogQuery(window=resolve_window(from_, to, settings.query), filters=filters)


def dependencies(settings: NamedDependency[Settings]) -> dict[str, Provide]:
    return {
        "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
        "read_engine": Provide(provide_read_engine, sync_to_thread=False),
        "primary_engine": Provide(provide_primary_engine, sync_to_thread=False),
        "capabilities": Provide(provide_capabilities, sync_to_thread=False),
        "traces": Provide(provide_trace_repository, sync_to_thread=False),
        "spans": _read_repository(SpanRepository),
        "sessions": _read_repository(lambda engine, _: SessionRepository(engine)),
        "logs": _read_repository(LogRepository),
        "models": _read_repository(ModelRepository),
        "metric_repository": Provide(provide_metric_repository, sync_to_thread=False),
        "list_filters": Provide(provide_list_filters, sync_to_thread=False),
        "span_filters": Provide(provide_span_filters, sync_to_thread=False),
        "log_query": Provide(provide_log_query, sync_to_thread=False),
    }
