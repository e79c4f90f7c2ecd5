"""One OTLP export, whichever transport brought it (OTLP/HTTP or OTLP/gRPC): a write slot (or
back-pressure), decode, map and write, and what the request lost told and counted.

Errors are the domain vocabulary: the HTTP controller renders them as problem+json, the gRPC
server as status codes (ingest/grpc_server.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from litestar.datastructures import State
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from observatory_api.core.errors import DomainError, FieldError, InvalidInput, PayloadTooLarge, Unavailable
from observatory_api.ingest import otlp
from observatory_api.ingest.limits import DecodeLimits, TooMuchWork
from observatory_api.ingest.report import RefusalReason, Signal, count_refusal
from observatory_api.ingest.resources import ingest_resources
from observatory_api.ingest.service import IngestResult, ingest_logs, ingest_traces
from observatory_api.settings import Settings

# Requests waiting longer than this for a write slot are told to retry: back-pressure, not a queue.
SLOT_WAIT_SECONDS = 2.0
RETRY_AFTER_SECONDS = "2"
Response = ExportTraceServiceResponse | ExportLogsServiceResponse


def decode_limits(settings: Settings) -> DecodeLimits:
    ingest = settings.ingest
    return DecodeLimits(
        max_resources=ingest.max_resources_per_request,
        max_scopes=ingest.max_scopes_per_request,
        max_records=ingest.max_records_per_request,
        max_values_per_record=ingest.max_values_per_record,
    )


def max_decompressed_bytes(settings: Settings) -> int:
    limit = settings.ingest.max_decompressed_bytes
    return settings.server.max_body_bytes if limit is None else limit


def refused(signal: Signal, reason: RefusalReason, error: DomainError) -> DomainError:
    count_refusal(signal, reason)
    return error


async def export(state: State, signal: Signal, body: bytes, kind: str) -> IngestResult:
    """Decode and store one decompressed OTLP request of `signal` (spans or logs) in `kind`."""
    ingest = ingest_traces if signal == "spans" else ingest_logs
    resources = ingest_resources(state)
    work = ingest(resources.writer, body, kind, decode_limits(state.settings))
    result = await _with_slot(resources.slots, work, signal)
    result.report.count()
    resources.warnings.warn(result.report)
    return result


def response_message(signal: Signal, result: IngestResult) -> Response:
    """The OTLP answer: partial_success tells of rejected items, and may carry a warning with 0 rejected."""
    message: Response = ExportTraceServiceResponse() if signal == "spans" else ExportLogsServiceResponse()
    error_message = result.report.error_message()
    if error_message:
        field = "rejected_spans" if signal == "spans" else "rejected_log_records"
        setattr(message.partial_success, field, result.rejected)
        message.partial_success.error_message = error_message
    return message


async def _with_slot(
    semaphore: asyncio.Semaphore, work: Coroutine[Any, Any, IngestResult], signal: Signal
) -> IngestResult:
    try:
        await asyncio.wait_for(semaphore.acquire(), timeout=SLOT_WAIT_SECONDS)
    except TimeoutError:
        work.close()
        raise Unavailable("ingest is busy; retry later", headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    try:
        return await work
    except otlp.MalformedExport as exc:
        raise refused(signal, "malformed", InvalidInput.field("body", str(exc), "body")) from None
    except TooMuchWork as exc:
        reason: RefusalReason = _TOO_MUCH.get(exc.setting, "too_many_fields")
        problem = PayloadTooLarge(
            str(exc), errors=[FieldError(field=f"ingest.{exc.setting}", reason=str(exc), source="body")]
        )
        raise refused(signal, reason, problem) from None
    finally:
        semaphore.release()


_TOO_MUCH: dict[str, RefusalReason] = {
    "max_resources_per_request": "too_many_resources",
    "max_scopes_per_request": "too_many_scopes",
    "max_records_per_request": "too_many_records",
}
