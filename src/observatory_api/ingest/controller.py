"""`POST /v1/traces`, `/v1/logs` and `/v1/metrics`: OTLP/HTTP, protobuf or JSON, gzip or not."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State

from observatory_api.core.errors import DomainError, InvalidInput, NotFound, PayloadTooLarge
from observatory_api.core.vocabulary import OTLP_LOGS_PATH, OTLP_METRICS_PATH, OTLP_TRACES_PATH
from observatory_api.ingest import otlp, otlp_metrics
from observatory_api.ingest.export import (
    RETRY_AFTER_SECONDS,
    decode_limits,
    export,
    max_decompressed_bytes,
    refused,
    response_message,
)
from observatory_api.ingest.report import Signal
from observatory_api.ingest.service import BodyTooLarge, IngestResult, UnsupportedEncoding, decompress, media_type

__all__ = ["RETRY_AFTER_SECONDS", "IngestController", "IngestDisabledController", "decode_limits"]


class UnsupportedMediaType(DomainError):
    status_code, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class IngestController(Controller):
    tags = ["ingest"]

    @post(OTLP_TRACES_PATH, operation_id="ingest_traces", summary="OTLP/HTTP trace export", status_code=200)
    async def ingest_traces(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An OpenTelemetry `ExportTraceServiceRequest` (protobuf or JSON, optionally gzip)."""
        kind, body = await _read(request, state, "spans")
        return _answer(kind, "spans", await export(state, "spans", body, kind))

    @post(OTLP_LOGS_PATH, operation_id="ingest_logs", summary="OTLP/HTTP log export", status_code=200)
    async def ingest_logs(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An OpenTelemetry `ExportLogsServiceRequest` (protobuf or JSON, optionally gzip)."""
        kind, body = await _read(request, state, "logs")
        return _answer(kind, "logs", await export(state, "logs", body, kind))

    @post(OTLP_METRICS_PATH, operation_id="ingest_metrics", summary="OTLP/HTTP metric export", status_code=200)
    async def ingest_metrics(self, request: Request[Any, Any, State], state: State) -> Response[bytes]:
        """An `ExportMetricsServiceRequest`: accepted and counted, not stored (LLM metrics come from
        the spans); the answer's `partial_success` says so, with nothing rejected."""
        kind, body = await _read(request, state, "metrics")
        count = otlp_metrics.points_in_protobuf if kind == otlp.PROTOBUF else otlp_metrics.points_in_json
        try:
            points = await asyncio.to_thread(count, body)
        except otlp.MalformedExport as exc:
            raise refused("metrics", "malformed", InvalidInput.field("body", str(exc), "body")) from None
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

    @post([OTLP_TRACES_PATH, OTLP_LOGS_PATH, OTLP_METRICS_PATH], operation_id="ingest_disabled", status_code=404)
    async def ingest_disabled(self) -> None:
        raise NotFound(INGEST_DISABLED)


async def _read(request: Request[Any, Any, State], state: State, signal: Signal) -> tuple[str, bytes]:
    kind = media_type(request.headers.get("content-type"))
    if kind is None:
        raise UnsupportedMediaType("send application/x-protobuf or application/json")
    limit = max_decompressed_bytes(state.settings)
    try:
        body = decompress(await request.body(), request.headers.get("content-encoding"), max_bytes=limit)
    except UnsupportedEncoding as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except BodyTooLarge as exc:
        raise refused(signal, "too_large", PayloadTooLarge(str(exc))) from None
    except otlp.MalformedExport as exc:
        raise refused(signal, "malformed", InvalidInput.field("body", str(exc), "body")) from None
    return kind, body


_JSON_REJECTED = {"spans": "rejectedSpans", "logs": "rejectedLogRecords"}


def _answer(kind: str, signal: Signal, result: IngestResult) -> Response[bytes]:
    message = response_message(signal, result)
    if kind == otlp.PROTOBUF:
        return Response(message.SerializeToString(), media_type=otlp.PROTOBUF, status_code=200)
    body: dict[str, Any] = {}
    if message.HasField("partial_success"):
        partial = message.partial_success
        body["partialSuccess"] = {_JSON_REJECTED[signal]: str(result.rejected), "errorMessage": partial.error_message}
    return Response(msgspec.json.encode(body), media_type=otlp.JSON, status_code=200)
