"""OpenTelemetry tracing of the service itself, exported over OTLP/HTTP; off unless configured.

`observability.otlp_endpoint` (`TRACING_OTLP_ENDPOINT`, never the SDK's `OTEL_EXPORTER_OTLP_ENDPOINT`,
which the applications sending telemetry here use) is the collector's base URL, as the
OpenTelemetry convention has it (`http://jaeger:4318`); spans go to `<base>/v1/traces`. Spans:
one server span per request (named `GET /api/v1/traces/{trace_id}`, with `http.route` and the
request id), one per SQL statement (SQLAlchemy) and one per Redis command. Needs the `otel`
extra. The tracer provider is the app's own (not the process-wide global), so tests can build
several apps; the SQLAlchemy instrumentation is process-wide, so one traced app runs at a time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from observatory_api import __version__
from observatory_api.core.vocabulary import OTLP_TRACES_PATH, PROBE_PATHS
from observatory_api.settings import Settings
from observatory_api.settings.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("observatory_api.tracing")


def otlp_traces_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(OTLP_TRACES_PATH) else endpoint + OTLP_TRACES_PATH


class Tracing:
    """The tracer provider of one app and the instrumentation it installs."""

    def __init__(self, settings: Settings) -> None:
        endpoint = settings.observability.otlp_endpoint
        assert endpoint is not None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError(
                "observability.otlp_endpoint (TRACING_OTLP_ENDPOINT)",
                "tracing needs the otel extra: pip install 'observatory-api[otel]'",
            ) from None
        resource = Resource.create(
            {
                "service.name": "observatory-api",
                "service.version": __version__,
                "deployment.environment": settings.environment,
            }
        )
        self.endpoint = otlp_traces_url(endpoint)
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint, timeout=5)))
        self._instrumented_sqlalchemy = False
        self._instrumented_redis: Any = None

    # -- the middleware's hooks (observability/middleware.py SpanHooks)

    def current_trace_id(self) -> str | None:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        return f"{context.trace_id:032x}" if context.is_valid else None

    def name_current_span(self, method: str, route: str, request_id: str) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("observatory.request_id", request_id)

    # -- wiring

    def wrap(self, app: Any) -> Any:
        """The OTel ASGI middleware around `app`: it starts the server span, continues an incoming
        `traceparent`, and records method, status and (on the span only) the URL."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(
            app,
            # The method only, until the middleware inside knows the route template: raw paths
            # as span names would hold ids (one name per trace in Jaeger's list).
            default_span_details=lambda scope: (scope.get("method", "HTTP"), {}),
            tracer_provider=self.provider,
            exclude_spans=["receive", "send"],
            excluded_urls=",".join(PROBE_PATHS),
        )

    def instrument(self, engine: AsyncEngine, redis: Redis | None) -> None:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        instrumentor = SQLAlchemyInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            logger.warning("SQLAlchemy is already instrumented in this process; its spans go to the first app")
        else:
            # skip_dep_check: the instrumentation declares "sqlalchemy < 2.1" but works with 2.1
            # (tests/integration/observability/test_tracing.py checks the spans arrive).
            instrumentor.instrument(engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True)
            self._instrumented_sqlalchemy = True
        if redis is not None:
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            RedisInstrumentor.instrument_client(redis, tracer_provider=self.provider)
            self._instrumented_redis = redis

    def shutdown(self) -> None:
        """Remove the instrumentation and flush the spans still queued (graceful shutdown)."""
        if self._instrumented_sqlalchemy:
            from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

            SQLAlchemyInstrumentor().uninstrument()
            self._instrumented_sqlalchemy = False
        if self._instrumented_redis is not None:
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            RedisInstrumentor.uninstrument_client(self._instrumented_redis)
            self._instrumented_redis = None
        self.provider.force_flush(timeout_millis=5000)
        self.provider.shutdown()
