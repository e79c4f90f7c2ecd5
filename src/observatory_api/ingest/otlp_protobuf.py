"""Decoding OTLP protobuf export requests into `OtlpSpan` and `OtlpLog`.

The entries are counted on the wire first (`wire.check_entries`), then the request is parsed in
one call. When the parser refuses it (a value nested past its depth limit, a string that is not
UTF-8), each record is parsed apart, and a record the parser still refuses is parsed without its
attributes, which are then parsed one by one: only what cannot be read is lost, and named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from observatory_api.ingest import wire
from observatory_api.ingest.limits import CancelFlag, DecodeLimits, MalformedExport
from observatory_api.ingest.otlp import OtlpLog, OtlpSpan, Unusable, ValueReader, finite_or_name, hex_id
from observatory_api.ingest.report import DropReason, IngestReport, service_name_of
from observatory_api.ingest.span_events import EVENT_TIME

# Field numbers of what a record parsed apart may lose: (message type, field name, repeated).
_SPAN_PARTS: dict[int, tuple[type[Message], str, bool]] = {9: (KeyValue, "attributes", True)}
_SPAN_PARTS[11] = (Span.Event, "events", True)
_SPAN_PARTS[13] = (Span.Link, "links", True)  # links are not stored: lost without a word
_LOG_PARTS: dict[int, tuple[type[Message], str, bool]] = {
    5: (AnyValue, "body", False),
    6: (KeyValue, "attributes", True),
}
_RESOURCE_PARTS: dict[int, tuple[type[Message], str, bool]] = {1: (KeyValue, "attributes", True)}
M = TypeVar("M", bound=Message)


class _Values(ValueReader):
    """AnyValue messages as plain Python, within the depth limit and the record's value budget."""

    def attributes(self, pairs: Any) -> dict[str, Any]:
        count = len(pairs)
        affordable = self.affordable(count)
        if affordable < count:
            pairs = pairs[:affordable]
        strip = self.report.strip
        result: dict[str, Any] = {}
        for pair in pairs:
            key = pair.key
            if "\x00" in key:
                key = strip(key)
            value = pair.value
            # Most values are non-empty strings: one read tells them apart (an unset string reads "").
            text = value.string_value
            if text:
                result[key] = text if "\x00" not in text else strip(text)
                continue
            kind = value.WhichOneof("value")
            if kind == "string_value":
                result[key] = text
            elif kind == "int_value" or kind == "bool_value":
                result[key] = getattr(value, kind)
            elif kind == "double_value":
                result[key] = finite_or_name(value.double_value)
            elif kind is None:
                result[key] = None
            else:
                try:
                    result[key] = self.nested(value, kind, 1)
                except Unusable as unusable:
                    self.report.drop(key, unusable.reason, unusable.detail)
        return result

    def any(self, value: AnyValue, depth: int) -> Any:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            return self.text(value.string_value)
        if kind == "double_value":
            return finite_or_name(value.double_value)
        if kind is None:
            return None
        if kind == "int_value" or kind == "bool_value":
            return getattr(value, kind)
        return self.nested(value, kind, depth + 1)

    def nested(self, value: AnyValue, kind: str, depth: int) -> Any:
        if kind == "bytes_value":
            return value.bytes_value.hex()
        self.check_depth(depth)
        if kind == "array_value":
            items = value.array_value.values
            self.spend(len(items))
            return [self.any(item, depth) for item in items]
        pairs = value.kvlist_value.values
        self.spend(len(pairs))
        return {self.text(pair.key): self.any(pair.value, depth) for pair in pairs}


Entries = Iterable[tuple[Any, Iterable[tuple[str | None, Iterable[Any]]]]]
R = TypeVar("R")


@dataclass(frozen=True)
class _Signal(Generic[R]):
    """How to read one kind of export request: traces or logs."""

    request: Callable[[], Message]
    entries_of: Callable[[Any], Entries]
    parts: dict[int, tuple[type[Message], str, bool]]
    record_type: type[Message]
    convert: Callable[[Any, dict[str, Any], str | None, _Values], R]


def _records(
    body: bytes, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag, signal: _Signal[R]
) -> Iterator[R]:
    """Each span or log record of an export request, converted with its resource and scope name:
    parsed whole, or entry by entry (`_tolerant_entries`) when the request as a whole does not parse."""
    wire.check_entries(body, limits)
    values = _Values(report, limits.max_values_per_record)
    request = signal.request()
    try:
        request.ParseFromString(body)
    except DecodeError:
        entries: Entries = _tolerant_entries(body, signal.parts, signal.record_type, report)
    else:
        entries = signal.entries_of(request)
    for resource_message, scopes in entries:
        resource = _resource(resource_message, values)
        for scope_name, records in scopes:
            scope = values.text(scope_name) if scope_name else None
            for record in records:
                cancel.check()
                if record is not None:
                    yield signal.convert(record, resource, scope, values)


def _span_entries(request: ExportTraceServiceRequest) -> Entries:
    return (
        (entry.resource, ((scope.scope.name, scope.spans) for scope in entry.scope_spans))
        for entry in request.resource_spans
    )


def _log_entries(request: ExportLogsServiceRequest) -> Entries:
    # Logs keep no scope name.
    return (
        (entry.resource, ((None, scope.log_records) for scope in entry.scope_logs)) for entry in request.resource_logs
    )


def spans_from_protobuf(
    body: bytes, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag
) -> Iterator[OtlpSpan]:
    return _records(body, limits, report, cancel, _TRACES)


def logs_from_protobuf(
    body: bytes, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag
) -> Iterator[OtlpLog]:
    return _records(body, limits, report, cancel, _LOGS)


def _span(span: Span, resource: dict[str, Any], scope: str | None, values: _Values) -> OtlpSpan:
    values.start_record()
    attributes = values.attributes(span.attributes)  # before the events: they matter more
    events = []
    if span.events:
        try:
            values.spend(len(span.events))
        except Unusable as unusable:
            values.report.drop("events", unusable.reason, unusable.detail, count=len(span.events))
        else:
            events = [
                {**values.attributes(e.attributes), "name": values.text(e.name), EVENT_TIME: e.time_unix_nano}
                for e in span.events
            ]
    return OtlpSpan(
        trace_id=hex_id(span.trace_id) or "",
        span_id=hex_id(span.span_id) or "",
        parent_span_id=hex_id(span.parent_span_id),
        name=values.text(span.name),
        kind=span.kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=span.status.code,
        status_message=values.text(span.status.message) or None,
        attributes=attributes,
        resource=resource,
        scope=scope,
        events=events,
    )


def _log(record: LogRecord, resource: dict[str, Any], _scope: str | None, values: _Values) -> OtlpLog:
    values.start_record()
    try:
        body = values.any(record.body, 0)
    except Unusable as unusable:
        values.report.drop("body", unusable.reason, unusable.detail)
        body = None
    return OtlpLog(
        time_ns=record.time_unix_nano or record.observed_time_unix_nano,
        severity_number=record.severity_number,
        severity_text=values.text(record.severity_text) or None,
        body=body,
        trace_id=hex_id(record.trace_id),
        span_id=hex_id(record.span_id),
        attributes=values.attributes(record.attributes),
        resource=resource,
    )


def _resource(message: Resource | None, values: _Values) -> dict[str, Any]:
    values.report.enter_resource()
    values.start_record()
    resource = values.attributes(message.attributes) if message is not None else {}
    values.report.set_service(service_name_of(resource))
    return resource


# --------------------------------------------------------------------------- parsed apart


def _tolerant_entries(
    body: bytes, parts: dict[int, tuple[type[Message], str, bool]], record_type: type[Message], report: IngestReport
) -> Iterator[tuple[Resource | None, Iterator[tuple[str | None, Iterator[Message | None]]]]]:
    for entry in wire.export_slices(body):
        report.enter_resource()  # what the resource itself loses is reported before its service is known
        resource = _parse_apart(Resource, b"".join(entry.descriptor), _RESOURCE_PARTS, report)
        if resource is None:
            report.drop("resource", "undecodable", "the Resource is not valid protobuf")
        yield resource, _tolerant_scopes(entry.scopes, parts, record_type, report)


def _tolerant_scopes(
    scopes: list[wire.ScopeSlices],
    parts: dict[int, tuple[type[Message], str, bool]],
    record_type: type[Message],
    report: IngestReport,
) -> Iterator[tuple[str | None, Iterator[Message | None]]]:
    noun = "span" if record_type is Span else "log record"
    for scope in scopes:
        name = wire.first_string(b"".join(scope.descriptor), 1)
        yield name, (_parse_record(record, record_type, parts, report, noun) for record in scope.records)


def _parse_record(
    data: bytes,
    record_type: type[Message],
    parts: dict[int, tuple[type[Message], str, bool]],
    report: IngestReport,
    noun: str,
) -> Message | None:
    record = _parse_apart(record_type, data, parts, report)
    if record is None:
        report.reject("undecodable", f"a {noun} is not valid protobuf (a string that is not UTF-8, or a broken field)")
    return record


def _parse_apart(
    message_type: type[M], data: bytes, parts: dict[int, tuple[type[Message], str, bool]], report: IngestReport
) -> M | None:
    """`data` parsed as `message_type`; failing that, parsed without its `parts`, which are then
    added one by one (each one the parser refuses is noted as dropped). None when even the rest fails."""
    try:
        return message_type.FromString(data)
    except DecodeError:
        pass
    try:
        rest, apart = wire.split_fields(data, frozenset(parts))
        message = message_type.FromString(rest)
    except (DecodeError, MalformedExport):
        return None
    for number, payload in apart:
        part_type, name, repeated = parts[number]
        try:
            part = part_type.FromString(payload)
        except DecodeError as error:
            if name != "links":
                key = wire.first_string(payload, 1) if part_type is KeyValue else name
                report.drop(key or name, _reason(error), _detail(error))
            continue
        if repeated:
            getattr(message, name).append(part)
        else:
            getattr(message, name).CopyFrom(part)
    return message


def _reason(error: DecodeError) -> DropReason:
    return "too_deep" if "MaxDepth" in str(error) else "undecodable"


def _detail(error: DecodeError) -> str:
    if "MaxDepth" in str(error):
        return "nested deeper than the protobuf parser allows"
    return "not valid protobuf: a string that is not UTF-8, or a broken field"


_TRACES = _Signal(ExportTraceServiceRequest, _span_entries, _SPAN_PARTS, Span, _span)
_LOGS = _Signal(ExportLogsServiceRequest, _log_entries, _LOG_PARTS, LogRecord, _log)
