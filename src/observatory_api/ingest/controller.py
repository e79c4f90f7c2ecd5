"""`POST /v1/traces` and `POST /v1/logs`: OTLP/HTTP, protobuf or JSON, gzip or not."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from observatory_api.errors import DomainError, InvalidInput, PayloadTooLarge, Unavailable
from observatory_api.ingest import otlp
from observatory_api.ingest.service import (
    BodyTooLarge,
    IngestResult,
    UnsupportedEncoding,
    decompress,
    ingest_logs,
    ingest_traces,
    media_type,
)


class UnsupportedMediaType(DomainError):
    status_code, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


# Requests waiting longer than this for a write slot are told to retry: back-pressure, not a queue.
SLOT_WAIT_SECONDS = 2.0
RETRY_AFTER_SECONDS = "2"


class IngestController(Controller):
    tags = ["ingest"]

    @post("/v1/traces", operation_id="ingest_traces", summary="OTLP/HTTP trace export", status_code=200)
    async def ingest_traces(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An OpenTelemetry `ExportTraceServiceRequest` (protobuf or JSON, optionally gzip)."""
        kind, body = await _read(request, state)
        result = await _with_slot(state, ingest_traces(state.ingest_writer, body, kind))
        return _answer(kind, result, ExportTraceServiceResponse(), "rejectedSpans", "rejected_spans")

    @post("/v1/logs", operation_id="ingest_logs", summary="OTLP/HTTP log export", status_code=200)
    async def ingest_logs(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An OpenTelemetry `ExportLogsServiceRequest` (protobuf or JSON, optionally gzip)."""
        kind, body = await _read(request, state)
        result = await _with_slot(state, ingest_logs(state.ingest_writer, body, kind))
        return _answer(kind, result, ExportLogsServiceResponse(), "rejectedLogRecords", "rejected_log_records")


async def _read(request: Request[Any, Any, State], state: State) -> tuple[str, bytes]:
    kind = media_type(request.headers.get("content-type"))
    if kind is None:
        raise UnsupportedMediaType("send application/x-protobuf or application/json")
    limit = state.settings.server.max_body_bytes
    try:
        body = decompress(await request.body(), request.headers.get("content-encoding"), max_bytes=limit)
    except UnsupportedEncoding as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except BodyTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except otlp.MalformedExport as exc:
        raise InvalidInput.field("body", str(exc), "body") from None
    return kind, body


async def _with_slot(state: State, work: Any) -> IngestResult:
    semaphore: asyncio.Semaphore = state.ingest_slots
    try:
        await asyncio.wait_for(semaphore.acquire(), timeout=SLOT_WAIT_SECONDS)
    except TimeoutError:
        work.close()
        raise Unavailable("ingest is busy; retry later", headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    try:
        return await work
    except otlp.MalformedExport as exc:
        raise InvalidInput.field("body", str(exc), "body") from None
    finally:
        semaphore.release()


def _answer(kind: str, result: IngestResult, message: Any, json_field: str, proto_field: str) -> Response[bytes]:
    if result.rejected:
        setattr(message.partial_success, proto_field, result.rejected)
        message.partial_success.error_message = result.error_message or ""
    if kind == otlp.PROTOBUF:
        return Response(message.SerializeToString(), media_type=otlp.PROTOBUF, status_code=200)
    body: dict[str, Any] = {}
    if result.rejected:
        body["partialSuccess"] = {json_field: str(result.rejected), "errorMessage": result.error_message or ""}
    return Response(msgspec.json.encode(body), media_type=otlp.JSON, status_code=200)
