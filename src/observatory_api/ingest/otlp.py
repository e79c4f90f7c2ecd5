"""Decoding OTLP/HTTP export requests, in protobuf or proto3 JSON, into plain Python.

Both encodings end in the same shapes (`OtlpSpan`, `OtlpLog`), so the attribute mapping is written
once. Ids become lowercase hex (the JSON encoding already carries hex; protobuf carries bytes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class MalformedExport(ValueError):
    """The body is not an OTLP export request in the declared encoding."""


@dataclass(slots=True)
class OtlpSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str | None
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class OtlpLog:
    time_ns: int
    severity_number: int
    severity_text: str | None
    body: Any
    trace_id: str | None
    span_id: str | None
    attributes: dict[str, Any]
    resource: dict[str, Any]


# --------------------------------------------------------------------------- protobuf


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _pb_attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in attributes}


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw and any(raw) else None


def spans_from_protobuf(body: bytes) -> Iterator[OtlpSpan]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedExport(f"not an OTLP ExportTraceServiceRequest in protobuf ({exc})") from None
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            for span in scope_spans.spans:
                yield OtlpSpan(
                    trace_id=_hex(span.trace_id) or "",
                    span_id=_hex(span.span_id) or "",
                    parent_span_id=_hex(span.parent_span_id),
                    name=span.name,
                    kind=span.kind,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status_code=span.status.code,
                    status_message=span.status.message or None,
                    attributes=_pb_attributes(span.attributes),
                    resource=resource,
                    scope=scope,
                    events=[{"name": e.name, **_pb_attributes(e.attributes)} for e in span.events],
                )


def logs_from_protobuf(body: bytes) -> Iterator[OtlpLog]:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedExport(f"not an OTLP ExportLogsServiceRequest in protobuf ({exc})") from None
    for resource_logs in request.resource_logs:
        resource = _pb_attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield OtlpLog(
                    time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                    severity_number=record.severity_number,
                    severity_text=record.severity_text or None,
                    body=_pb_value(record.body),
                    trace_id=_hex(record.trace_id),
                    span_id=_hex(record.span_id),
                    attributes=_pb_attributes(record.attributes),
                    resource=resource,
                )


# --------------------------------------------------------------------------- proto3 JSON

_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    (kind, inner), *_ = value.items()
    match kind:
        case "stringValue" | "boolValue" | "doubleValue":
            return inner
        case "intValue":
            return int(inner)
        case "arrayValue":
            return [_json_value(v) for v in (inner or {}).get("values", [])]
        case "kvlistValue":
            return _json_attributes((inner or {}).get("values", []))
        case "bytesValue":
            return base64.b64decode(inner).hex()
    raise MalformedExport(f"unknown AnyValue field {kind!r}")


def _json_attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        raise MalformedExport("attributes must be a list of {key, value}")
    return {item["key"]: _json_value(item.get("value")) for item in items}


def _json_id(value: Any) -> str | None:
    """OTLP JSON carries ids as hex; be lenient with base64 from protobuf's generic JSON mapping."""
    if not value:
        return None
    text = str(value)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise MalformedExport(f"id {text[:40]!r} is neither hex nor base64") from None
    return _hex(raw)


def _enum(value: Any, names: dict[str, int]) -> int:
    return names.get(value, 0) if isinstance(value, str) else int(value or 0)


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedExport(f"not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise MalformedExport("the body must be a JSON object")
    return document


def spans_from_json(body: bytes) -> Iterator[OtlpSpan]:
    document = _load_json(body)
    try:
        for resource_spans in document.get("resourceSpans", []):
            resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes", []))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope = (scope_spans.get("scope") or {}).get("name")
                for span in scope_spans.get("spans", []):
                    status = span.get("status") or {}
                    yield OtlpSpan(
                        trace_id=_json_id(span.get("traceId")) or "",
                        span_id=_json_id(span.get("spanId")) or "",
                        parent_span_id=_json_id(span.get("parentSpanId")),
                        name=str(span.get("name", "")),
                        kind=_enum(span.get("kind"), _SPAN_KINDS),
                        start_ns=int(span.get("startTimeUnixNano", 0)),
                        end_ns=int(span.get("endTimeUnixNano", 0)),
                        status_code=_enum(status.get("code"), _STATUS_CODES),
                        status_message=status.get("message") or None,
                        attributes=_json_attributes(span.get("attributes", [])),
                        resource=resource,
                        scope=scope,
                        events=[
                            {"name": e.get("name"), **_json_attributes(e.get("attributes", []))}
                            for e in span.get("events", [])
                        ],
                    )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MalformedExport):
            raise
        raise MalformedExport(f"not an OTLP trace export ({exc.__class__.__name__}: {exc})") from None


def logs_from_json(body: bytes) -> Iterator[OtlpLog]:
    document = _load_json(body)
    try:
        for resource_logs in document.get("resourceLogs", []):
            resource = _json_attributes((resource_logs.get("resource") or {}).get("attributes", []))
            for scope_logs in resource_logs.get("scopeLogs", []):
                for record in scope_logs.get("logRecords", []):
                    yield OtlpLog(
                        time_ns=int(record.get("timeUnixNano") or record.get("observedTimeUnixNano") or 0),
                        severity_number=_enum(record.get("severityNumber"), {}),
                        severity_text=record.get("severityText") or None,
                        body=_json_value(record.get("body")),
                        trace_id=_json_id(record.get("traceId")),
                        span_id=_json_id(record.get("spanId")),
                        attributes=_json_attributes(record.get("attributes", [])),
                        resource=resource,
                    )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MalformedExport):
            raise
        raise MalformedExport(f"not an OTLP logs export ({exc.__class__.__name__}: {exc})") from None
