"""`create_app(settings)`: wiring only. Everything the app needs is built here, nothing at import."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Tag

from observatory_api import __version__
from observatory_api.auth.admin import AdminController
from observatory_api.auth.controller import AuthController
from observatory_api.compression import compression_config
from observatory_api.core.vocabulary import API_PREFIX
from observatory_api.deps import dependencies
from observatory_api.docs_pages.assets import asset_routers
from observatory_api.docs_pages.pages import OfflineRedocRenderPlugin, OfflineSwaggerRenderPlugin
from observatory_api.errors import exception_handlers
from observatory_api.exports.controller import ExportController
from observatory_api.health.controller import HealthController
from observatory_api.ingest.controller import IngestController, IngestDisabledController
from observatory_api.landing import landing
from observatory_api.lifespan import lifespan
from observatory_api.logs.controller import LogController
from observatory_api.metric_series import create_known_series
from observatory_api.metrics.controller import MetricController
from observatory_api.models.controller import ModelController
from observatory_api.observability import metrics
from observatory_api.observability.log_config import logging_config
from observatory_api.observability.request_id import add_request_id_header
from observatory_api.observability.setup import install_observability, observability_lifespan
from observatory_api.openapi_docs import AUTHENTICATED, ClosedStructSchemaPlugin, security_schemes
from observatory_api.prebuilt import take_for_worker
from observatory_api.read_fallback import ReplicaFallbackMiddleware
from observatory_api.request import ApiRequest
from observatory_api.security.cors import install_cors
from observatory_api.security.permissions import requires
from observatory_api.security.setup import build_security
from observatory_api.sessions.controller import SessionController
from observatory_api.settings import Settings, load_settings
from observatory_api.spans.controller import SpanController
from observatory_api.strict_query import check_request_parameters
from observatory_api.traces.controller import TraceController


def create_app(settings: Settings) -> Litestar:
    security = build_security(settings)
    api = Router(
        path=API_PREFIX,
        route_handlers=[
            TraceController,
            SpanController,
            SessionController,
            ModelController,
            MetricController,
            LogController,
            ExportController,
        ],
        guards=[requires("read")],
        security=AUTHENTICATED,
    )
    ingest = Router(path="/", route_handlers=[IngestController], guards=[requires("ingest")], security=AUTHENTICATED)
    app = Litestar(
        route_handlers=[
            landing,
            HealthController,
            api,
            ingest if settings.ingest_enabled else IngestDisabledController,
            *_graphql(settings),
            Router(path=API_PREFIX, route_handlers=[AuthController, AdminController]),
            *(asset_routers() if settings.features.docs or settings.graphql.playground else []),
        ],
        state=State({"settings": settings, **security.state}),
        # gRPC last: it needs the security store, and stops (draining) before the engines close.
        lifespan=[lifespan, observability_lifespan, *security.lifespan, _grpc(settings)],
        # Innermost: a read a replica failed is answered again from the primary, inside the
        # authentication and rate limits that already counted it once.
        middleware=[*security.middleware, *_replica_fallback(settings)],
        stores=security.stores,
        response_cache_config=security.response_cache_config,
        dependencies=dependencies(settings),
        exception_handlers=exception_handlers(),
        before_request=check_request_parameters,
        before_send=[add_request_id_header, *security.before_send],
        compression_config=compression_config(),
        openapi_config=_openapi(settings),
        request_max_body_size=settings.server.max_body_bytes,
        request_class=ApiRequest,
        plugins=[ClosedStructSchemaPlugin()],
        logging_config=logging_config(settings.logging),
        debug=False,
    )
    # Inside CORS, outside the router: cache hits skip the middleware stack, DI and the route.
    security.install_fast_path(app)
    # Before observability, which wraps the whole pipeline outside CORS.
    install_cors(app, settings.cors)
    install_observability(app, settings, api_prefix=API_PREFIX)
    create_known_series()
    return app


# A feature that is off is not imported: Strawberry and graphql-core (~8 MB a worker), grpc (~8 MB).
def _graphql(settings: Settings) -> list[Any]:
    if not settings.graphql.enabled:
        return []
    from observatory_api.graphql.controller import graphql_route_handlers

    return graphql_route_handlers(settings)


def _grpc(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    if settings.ingest_enabled and settings.ingest.grpc_port != 0:
        from observatory_api.ingest.grpc_server import grpc_lifespan

        return grpc_lifespan
    return _no_grpc


@asynccontextmanager
async def _no_grpc(app: Litestar) -> AsyncIterator[None]:
    app.state.grpc_port = None
    yield


def _replica_fallback(settings: Settings) -> list[ReplicaFallbackMiddleware]:
    if not settings.database.replica_urls:
        return []
    return [ReplicaFallbackMiddleware(on_retry=metrics.db_replica_read_retries_total.inc)]


def create_app_from_environment() -> Litestar:
    """The factory granian calls in each worker: settings from `api-config.yml` and the environment;
    the app `serve` built before the fork when it was built from the same settings (prebuilt.py)."""
    settings = load_settings()
    return take_for_worker(settings) or create_app(settings)


def _openapi(settings: Settings) -> OpenAPIConfig | None:
    if not settings.features.docs:
        return None
    return OpenAPIConfig(
        title="observatory-api",
        version=__version__,
        description=(
            "Query service for LLM observability data: traces, spans, sessions, models and logs. "
            "Errors are problem+json (RFC 9457) naming the field and the reason."
        ),
        path="/schema",
        render_plugins=[OfflineSwaggerRenderPlugin(), OfflineRedocRenderPlugin()],
        tags=[
            Tag(name="traces", description="Trace summaries, trees of spans, and search."),
            Tag(name="spans", description="LLM calls and the other steps of traces."),
            Tag(name="sessions", description="Traces grouped by session."),
            Tag(name="models", description="The model catalogue and each model's usage."),
            Tag(name="metrics", description="The metric catalogue and metric queries: groups, buckets, percentiles."),
            Tag(name="logs", description="Logs tied to traces and spans."),
            Tag(name="export", description="Every matching span, trace or log, streamed as NDJSON or CSV."),
            Tag(name="health", description="Liveness, readiness and health."),
        ],
        components=Components(security_schemes=security_schemes()),
        use_handler_docstrings=True,
    )
