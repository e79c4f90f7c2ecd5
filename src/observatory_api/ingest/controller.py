"""`POST /v1/traces`, `/v1/logs` and `/v1/metrics`: OTLP/HTTP, protobuf or JSON, gzip or not."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from observatory_api.errors import DomainError, FieldError, InvalidInput, NotFound, PayloadTooLarge, Unavailable
from observatory_api.ingest import otlp, otlp_metrics
from observatory_api.ingest.limits import DecodeLimits, TooMuchWork
from observatory_api.ingest.report import IngestReport, IngestWarnings, RefusalReason, Signal, count_refusal
from observatory_api.ingest.service import (
    BodyTooLarge,
    IngestResult,
    UnsupportedEncoding,
    decompress,
    ingest_logs,
    ingest_traces,
    media_type,
)
from observatory_api.settings import Settings


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
        kind, body = await _read(request, state, "spans")
        work = ingest_traces(state.ingest_writer, body, kind, decode_limits(state.settings))
        result = await _with_slot(state, work, "spans")
        _tell(state, result.report)
        return _answer(kind, result, ExportTraceServiceResponse(), "rejectedSpans", "rejected_spans")

    @post("/v1/logs", operation_id="ingest_logs", summary="OTLP/HTTP log export", status_code=200)
    async def ingest_logs(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An OpenTelemetry `ExportLogsServiceRequest` (protobuf or JSON, optionally gzip)."""
        kind, body = await _read(request, state, "logs")
        work = ingest_logs(state.ingest_writer, body, kind, decode_limits(state.settings))
        result = await _with_slot(state, work, "logs")
        _tell(state, result.report)
        return _answer(kind, result, ExportLogsServiceResponse(), "rejectedLogRecords", "rejected_log_records")

    @post("/v1/metrics", operation_id="ingest_metrics", summary="OTLP/HTTP metric export", status_code=200)
    async def ingest_metrics(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An `ExportMetricsServiceRequest`: accepted and counted, not stored (LLM metrics come from
        the spans); the answer's `partial_success` says so, with nothing rejected."""
        kind, body = await _read(request, state, "metrics")
        count = otlp_metrics.points_in_protobuf if kind == otlp.PROTOBUF else otlp_metrics.points_in_json
        try:
            points = await asyncio.to_thread(count, body)
        except otlp.MalformedExport as exc:
            raise _refused("metrics", "malformed", InvalidInput.field("body", str(exc), "body")) from None
        message = otlp_metrics.discard(points)
        if kind == otlp.PROTOBUF:
            return Response(message.SerializeToString(), media_type=otlp.PROTOBUF, status_code=200)
        partial = {"rejectedDataPoints": "0", "errorMessage": message.partial_success.error_message}
        return Response(msgspec.json.encode({"partialSuccess": partial}), media_type=otlp.JSON, status_code=200)


INGEST_DISABLED = (
    "OTLP ingest is off on this server: set INGEST_ENABLED=true (features.ingest in api-config.yml) "
    "and give the exporter a key of the ingest role (`observatory-api keys create --role ingest`)"
)


class IngestDisabledController(Controller):
    """Where ingest is off, the OTLP paths say how to turn it on instead of a bare 404. No
    credential is asked for (`no_credential`): there is nothing behind these routes to protect."""

    tags = ["ingest"]
    include_in_schema = False
    opt = {"no_credential": True}

    @post(["/v1/traces", "/v1/logs", "/v1/metrics"], operation_id="ingest_disabled", status_code=404)
    async def ingest_disabled(self) -> None:
        raise NotFound(INGEST_DISABLED)


def decode_limits(settings: Settings) -> DecodeLimits:
    ingest = settings.ingest
    return DecodeLimits(
        max_resources=ingest.max_resources_per_request,
        max_scopes=ingest.max_scopes_per_request,
        max_records=ingest.max_records_per_request,
        max_values_per_record=ingest.max_values_per_record,
    )


def _refused(signal: Signal, reason: RefusalReason, error: DomainError) -> DomainError:
    count_refusal(signal, reason)
    return error


async def _read(request: Request[Any, Any, State], state: State, signal: Signal) -> tuple[str, bytes]:
    kind = media_type(request.headers.get("content-type"))
    if kind is None:
        raise UnsupportedMediaType("send application/x-protobuf or application/json")
    settings: Settings = state.settings
    limit = settings.ingest.max_decompressed_bytes
    if limit is None:
        limit = settings.server.max_body_bytes
    try:
        body = decompress(await request.body(), request.headers.get("content-encoding"), max_bytes=limit)
    except UnsupportedEncoding as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except BodyTooLarge as exc:
        raise _refused(signal, "too_large", PayloadTooLarge(str(exc))) from None
    except otlp.MalformedExport as exc:
        raise _refused(signal, "malformed", InvalidInput.field("body", str(exc), "body")) from None
    return kind, body


async def _with_slot(state: State, work: Any, signal: Signal) -> IngestResult:
    semaphore: asyncio.Semaphore = state.ingest_slots
    try:
        await asyncio.wait_for(semaphore.acquire(), timeout=SLOT_WAIT_SECONDS)
    except TimeoutError:
        work.close()
        raise Unavailable("ingest is busy; retry later", headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    try:
        return await work
    except otlp.MalformedExport as exc:
        raise _refused(signal, "malformed", InvalidInput.field("body", str(exc), "body")) from None
    except TooMuchWork as exc:
        reason: RefusalReason = _TOO_MUCH.get(exc.setting, "too_many_fields")
        problem = PayloadTooLarge(
            str(exc), errors=[FieldError(field=f"ingest.{exc.setting}", reason=str(exc), source="body")]
        )
        raise _refused(signal, reason, problem) from None
    finally:
        semaphore.release()


_TOO_MUCH: dict[str, RefusalReason] = {
    "max_resources_per_request": "too_many_resources",
    "max_scopes_per_request": "too_many_scopes",
    "max_records_per_request": "too_many_records",
}


def _tell(state: State, report: IngestReport) -> None:
    """Counts what the request lost or had changed, and logs it (at most once per interval)."""
    report.count()
    warnings: IngestWarnings = state.ingest_warnings
    warnings.warn(report)


def _answer(kind: str, result: IngestResult, message: Any, json_field: str, proto_field: str) -> Response[bytes]:
    # OTLP: partial_success tells of rejected items, and may carry a warning with 0 rejected.
    error_message = result.report.error_message()
    if error_message:
        setattr(message.partial_success, proto_field, result.rejected)
        message.partial_success.error_message = error_message
    if kind == otlp.PROTOBUF:
        return Response(message.SerializeToString(), media_type=otlp.PROTOBUF, status_code=200)
    body: dict[str, Any] = {}
    if error_message:
        body["partialSuccess"] = {json_field: str(result.rejected), "errorMessage": error_message}
    return Response(msgspec.json.encode(body), media_type=otlp.JSON, status_code=200)
