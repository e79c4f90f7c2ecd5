"""OTLP/gRPC: `TraceService/Export`, `LogsService/Export` and `MetricsService/Export` on
`ingest.grpc_port`, in the worker's own event loop, beside the HTTP app.

The services are registered under the names of opentelemetry-proto's generated service
descriptors, with the request left as bytes: the same decoder as OTLP/HTTP reads it (bounded
before any message is built), then the same mapping, writer, back-pressure and counters
(ingest/export.py). The credential comes from the metadata (`x-api-key`, `authorization: Bearer`
or Basic) through the HTTP authenticator, and spends the same rate-limit buckets as
`POST /v1/traces` and `/v1/logs`. Refusals are status codes the exporters understand: busy, rate
limited or a database outage carry `google.rpc.RetryInfo` (the SDKs wait that long and retry);
malformed or oversized requests are INVALID_ARGUMENT (never retried). gzip is negotiated by gRPC.

Several granian workers each start a server on the same port: gRPC sets SO_REUSEPORT on Linux,
and the kernel spreads connections across them, as it does for the HTTP port.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from litestar import Litestar
from litestar.datastructures import State
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from observatory_api.core.errors import (
    DomainError,
    Forbidden,
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from observatory_api.core.vocabulary import OTLP_LOGS_PATH, OTLP_METRICS_PATH, OTLP_TRACES_PATH
from observatory_api.errors import database_problem
from observatory_api.ingest import otlp, otlp_metrics
from observatory_api.ingest.export import export, max_decompressed_bytes, refused, response_message
from observatory_api.ingest.report import Signal
from observatory_api.observability.metrics import api_auth_failures_total, ingest_grpc_requests_total
from observatory_api.security.authentication import ACCEPTED_FORMS, AuthFailure, presented_credential
from observatory_api.security.permissions import Principal
from observatory_api.security.rate_limit import RateLimiter
from observatory_api.security.store import SecurityStore
from observatory_api.settings import Settings

logger = logging.getLogger("observatory_api.ingest.grpc")
# In-flight exports get this long to finish at shutdown; new calls are refused meanwhile.
SHUTDOWN_GRACE_SECONDS = 10.0
DATABASE_RETRY_SECONDS = 5
# The HTTP path each signal shares its rate-limit buckets (and endpoint limits) with.
HTTP_PATHS: dict[str, str] = {"spans": OTLP_TRACES_PATH, "logs": OTLP_LOGS_PATH, "metrics": OTLP_METRICS_PATH}
_CODES: dict[type[DomainError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    PayloadTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# Requests and answers stay bytes: the handlers have no (de)serializers.
Context: TypeAlias = "grpc.aio.ServicerContext[bytes, bytes]"
Handler = Callable[[bytes, Context], Awaitable[bytes]]


class Refusal(Exception):
    """A call answered with a non-OK status (and, when retrying later helps, RetryInfo)."""

    def __init__(self, code: grpc.StatusCode, detail: str, retry_seconds: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_seconds = retry_seconds

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        if self.retry_seconds is None:
            return ()
        retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=self.retry_seconds))
        status = status_pb2.Status(code=self.code.value[0], message=self.detail)
        status.details.add().Pack(retry)
        # The Python, Go and Java exporters read one or the other.
        return (
            ("google.rpc.retryinfo-bin", retry.SerializeToString()),
            ("grpc-status-details-bin", status.SerializeToString()),
        )


def _unexpected(signal: Signal, exc: Exception) -> Refusal:
    """A database outage (the key lookup or the write) is UNAVAILABLE with RetryInfo; anything
    else INTERNAL, logged with its traceback."""
    problem = database_problem(exc)
    if problem is None:
        logger.error("gRPC export failed", exc_info=exc, extra={"signal": signal})
        return Refusal(grpc.StatusCode.INTERNAL, "internal error")
    logger.warning("database error answered with UNAVAILABLE", exc_info=exc, extra={"signal": signal})
    return Refusal(grpc.StatusCode.UNAVAILABLE, problem.detail, DATABASE_RETRY_SECONDS)


def refusal_of(error: DomainError) -> Refusal:
    code = _CODES.get(type(error), grpc.StatusCode.INTERNAL)
    retry_after = error.headers.get("Retry-After")
    return Refusal(code, error.detail, int(retry_after) if retry_after and retry_after.isdigit() else None)


class OtlpGrpcIngest:
    """The three Export methods; one per worker, built by the lifespan."""

    def __init__(self, app: Litestar) -> None:
        self._app = app
        self._state: State = app.state

    async def _call(self, signal: Signal, body: bytes, context: Context) -> bytes:
        code = grpc.StatusCode.OK
        try:
            try:
                principal = await self._authenticate(signal, context)
                await self._rate_limit(signal, context, principal)
                return await self._export(signal, body)
            except Refusal:
                raise
            except otlp.MalformedExport as exc:
                raise refusal_of(refused(signal, "malformed", InvalidInput(str(exc)))) from None
            except DomainError as error:
                raise refusal_of(error) from None
            except Exception as exc:
                raise _unexpected(signal, exc) from None
        except Refusal as refusal:
            code = refusal.code
            await context.abort(refusal.code, refusal.detail, trailing_metadata=refusal.trailing_metadata())
            raise  # abort raises; this line is never reached
        finally:
            ingest_grpc_requests_total.labels(signal=signal, code=code.name).inc()

    async def _export(self, signal: Signal, body: bytes) -> bytes:
        limit = max_decompressed_bytes(self._state.settings)
        if len(body) > limit:
            detail = f"the decompressed message exceeds {limit} bytes (ingest.max_decompressed_bytes)"
            raise refusal_of(refused(signal, "too_large", PayloadTooLarge(detail)))
        if signal == "metrics":
            points = otlp_metrics.points_in_protobuf(body)
            return otlp_metrics.discard(points).SerializeToString()
        result = await export(self._state, signal, body, otlp.PROTOBUF)
        return response_message(signal, result).SerializeToString()

    async def _authenticate(self, signal: Signal, context: Context) -> Principal:
        metadata = {key.lower(): value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        try:
            credential = presented_credential(metadata)
            if credential is None:
                raise AuthFailure("missing", f"a credential is required in the metadata: {ACCEPTED_FORMS}")
            principal: Principal = await self._state.authenticator.principal_for(credential, self._state)
        except AuthFailure as failure:
            api_auth_failures_total.labels(failure.reason).inc()
            limiter: RateLimiter | None = self._limiter()
            if limiter is not None:
                # Counts against the client IP, as a refused HTTP credential does.
                await self._check(limiter, self._scope(signal, context), None)
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, failure.detail) from None
        if not principal.can("ingest"):
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"the {principal.role} role may not write spans or logs")
        return principal

    async def _rate_limit(self, signal: Signal, context: Context, principal: Principal) -> None:
        limiter = self._limiter()
        if limiter is not None:
            await self._check(limiter, self._scope(signal, context), principal)

    def _limiter(self) -> RateLimiter | None:
        settings: Settings = self._state.settings
        return self._state.rate_limiter if settings.rate_limit.enabled else None

    async def _check(self, limiter: RateLimiter, scope: dict[str, Any], principal: Principal | None) -> None:
        store: SecurityStore = self._state.security_store
        try:
            await limiter.check(store, limiter.buckets(store, scope, principal))  # type: ignore[arg-type]
        except DomainError as error:
            raise refusal_of(error) from None

    def _scope(self, signal: Signal, context: Context) -> dict[str, Any]:
        """What the rate limiter reads of a request: the HTTP twin's path, and the peer address."""
        path = HTTP_PATHS[signal]
        return {"path": path, "path_template": path, "client": (peer_host(context.peer()), 0), "headers": []}

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        def method(signal: Signal) -> grpc.RpcMethodHandler[bytes, bytes]:
            async def handle(body: bytes, context: Context) -> bytes:
                return await self._call(signal, body, context)

            # No (de)serializers: the request arrives as bytes, the answer leaves as bytes.
            return grpc.unary_unary_rpc_method_handler(handle)

        return [
            grpc.method_handlers_generic_handler(service_name(module, name), {"Export": method(signal)})
            for module, name, signal in SERVICES
        ]


SERVICES: tuple[tuple[Any, str, Signal], ...] = (
    (trace_service_pb2, "TraceService", "spans"),
    (logs_service_pb2, "LogsService", "logs"),
    (metrics_service_pb2, "MetricsService", "metrics"),
)


def service_name(module: Any, name: str) -> str:
    """The full name of a generated OTLP service, e.g. `opentelemetry.proto.collector.trace.v1.TraceService`."""
    return str(module.DESCRIPTOR.services_by_name[name].full_name)


def peer_host(peer: str) -> str:
    """`ipv4:127.0.0.1:5000` -> `127.0.0.1`; `ipv6:[::1]:5000` -> `::1`."""
    _, _, address = peer.partition(":")
    if address.startswith("["):
        return address[1 : address.find("]")]
    return address.rpartition(":")[0] or address


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    limit = max_decompressed_bytes(settings)
    return [
        # gRPC's own refusal past this is RESOURCE_EXHAUSTED, which exporters retry: the handler
        # refuses past ingest.max_decompressed_bytes first (INVALID_ARGUMENT), with this headroom.
        ("grpc.max_receive_message_length", 2 * limit + 1024 * 1024),
        ("grpc.so_reuseport", 1),
        ("grpc.max_concurrent_streams", 100),
    ]


class GrpcPortUnavailable(RuntimeError):
    pass


async def start_grpc_server(app: Litestar, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """A started server on `host:port` (port 0: any free port); returns it and the port bound."""
    settings: Settings = app.state.settings
    server = grpc.aio.server(options=server_options(settings), compression=None)
    server.add_generic_rpc_handlers(OtlpGrpcIngest(app).handlers())
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:
        raise GrpcPortUnavailable(f"cannot listen on {host}:{port} ({exc})") from None
    if not bound:
        raise GrpcPortUnavailable(f"cannot listen on {host}:{port}")
    await server.start()
    return server, bound


@asynccontextmanager
async def grpc_lifespan(app: Litestar) -> AsyncIterator[None]:
    """After the security lifespan (it needs the store and the authenticator); stopped first, so
    that in-flight exports finish before the writer's engine is disposed of."""
    settings: Settings = app.state.settings
    app.state.grpc_port = None
    if not settings.ingest_enabled or settings.ingest.grpc_port == 0:
        yield
        return
    try:
        server, bound = await start_grpc_server(app, settings.server.host, settings.ingest.grpc_port)
    except GrpcPortUnavailable as exc:
        if settings.environment != "development":
            raise
        # In development the port may belong to a local Jaeger or Collector: HTTP ingest still works.
        logger.warning("OTLP/gRPC is off: %s; set INGEST_GRPC_PORT to a free port (0 = off)", exc)
        yield
        return
    app.state.grpc_port = bound
    logger.info("OTLP/gRPC ingest listening", extra={"port": bound})
    try:
        yield
    finally:
        await server.stop(SHUTDOWN_GRACE_SECONDS)
        logger.info("OTLP/gRPC ingest stopped")
