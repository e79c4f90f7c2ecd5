"""OTLP export requests built field by field, in protobuf and in OTLP's proto3 JSON (hex ids)."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
ENCODINGS = ("protobuf", "json")


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(string_value=str(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def new_trace_id() -> bytes:
    return os.urandom(16)


def span(trace_id: bytes, index: int, **fields: Any) -> Span:
    """A one-second span that started a minute ago; `fields` override Span fields."""
    start = time.time_ns() - 60_000_000_000 + index * 1_000_000
    values: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": (index + 1).to_bytes(8, "big"),
        "name": f"step {index}",
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + 1_000_000_000,
        "status": Status(code=Status.STATUS_CODE_OK),
    }
    values.update(fields)
    return Span(**values)


SERVICE = "bounds-test"


def trace_request(
    spans: list[Span], resource: dict[str, Any] | None = None, scope: str = ""
) -> ExportTraceServiceRequest:
    attributes = key_values(resource if resource is not None else {"service.name": SERVICE})
    scope_spans = ScopeSpans(scope=InstrumentationScope(name=scope), spans=spans)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=Resource(attributes=attributes), scope_spans=[scope_spans])]
    )


def log_record(index: int, **fields: Any) -> LogRecord:
    values: dict[str, Any] = {
        "time_unix_nano": time.time_ns() - 60_000_000_000 + index * 1_000_000,
        "severity_number": 9,
        "body": AnyValue(string_value=f"line {index}"),
    }
    values.update(fields)
    return LogRecord(**values)


def logs_request(records: list[LogRecord], service: str = SERVICE) -> ExportLogsServiceRequest:
    resource = Resource(attributes=key_values({"service.name": service}))
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
    )


def as_json(request: ExportTraceServiceRequest | ExportLogsServiceRequest) -> dict[str, Any]:
    """The proto3 JSON encoding of OTLP: protobuf's JSON mapping, but ids in hex."""
    document = MessageToDict(request)
    for resource in document.get("resourceSpans", []) + document.get("resourceLogs", []):
        for scope in resource.get("scopeSpans", []) + resource.get("scopeLogs", []):
            for record in scope.get("spans", []) + scope.get("logRecords", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if record.get(key):
                        record[key] = base64.b64decode(record[key]).hex()
    return document


def encoded(
    request: ExportTraceServiceRequest | ExportLogsServiceRequest, encoding: str
) -> tuple[bytes, dict[str, str]]:
    if encoding == "protobuf":
        return request.SerializeToString(), PROTOBUF
    return json.dumps(as_json(request)).encode(), JSON


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        if not number:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, for messages the protobuf library refuses to build."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_value(depth: int) -> bytes:
    """An AnyValue of `depth` kvlists inside each other around a string, as protobuf bytes."""
    value = field(1, b"bottom")
    for _ in range(depth):
        value = field(6, field(1, field(1, b"k") + field(2, value)))  # kvlist_value.values[0]
    return value


def raw_trace_request(span_bytes: list[bytes], service: str = SERVICE) -> bytes:
    """An ExportTraceServiceRequest around serialized spans (each may carry raw extra fields)."""
    resource = Resource(attributes=key_values({"service.name": service})).SerializeToString()
    scope_spans = b"".join(field(2, data) for data in span_bytes)
    return field(1, field(1, resource) + field(2, scope_spans))
