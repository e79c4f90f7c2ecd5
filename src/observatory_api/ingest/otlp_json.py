"""Decoding OTLP proto3 JSON export requests into `OtlpSpan` and `OtlpLog`.

The document is decoded whole (msgspec, bounded by the decompressed size), then its entries are
counted against the limits before any is walked. A document that is not an export request at all
is refused (400); a value of the wrong type drops its attribute, an unreadable id or timestamp
rejects its record, and every other record is stored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgspec

from observatory_api.ingest.limits import CancelFlag, DecodeLimits, MalformedExport, RejectedRecord, TooMuchWork
from observatory_api.ingest.otlp import OtlpLog, OtlpSpan, Unusable, ValueReader, finite_or_name, hex_id
from observatory_api.ingest.report import IngestReport, service_name_of
from observatory_api.ingest.span_events import EVENT_TIME

R = TypeVar("R")

_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_INT64 = (-(2**63), 2**63 - 1)
_NON_FINITE_NAMES = frozenset({"NaN", "Infinity", "-Infinity"})
# A document of the wrong shape; RecursionError: a safety net, nothing here should recurse deeply.
_STRUCTURE_ERRORS = (AttributeError, KeyError, TypeError, ValueError, RecursionError)


class _Values(ValueReader):
    """Proto3 JSON AnyValues as plain Python, within the depth limit and the record's value budget."""

    def attributes(self, items: Any) -> dict[str, Any]:
        if not isinstance(items, list):
            raise MalformedExport("attributes must be a list of {key, value}")
        count = len(items)
        affordable = self.affordable(count)
        result: dict[str, Any] = {}
        for item in items if affordable == count else items[:affordable]:
            key = item["key"]
            try:
                if not isinstance(key, str):
                    raise Unusable("invalid_value", "the key is not a string")
                key = self.text(key)
                result[key] = self.any(item.get("value"), 0)
            except Unusable as unusable:
                self.report.drop(key, unusable.reason, unusable.detail)
        return result

    def any(self, value: Any, depth: int) -> Any:
        if not isinstance(value, dict) or not value:
            return None
        kind, inner = next(iter(value.items()))
        if kind == "stringValue":
            if isinstance(inner, str):
                return self.text(inner)
            raise Unusable("invalid_value", "stringValue is not a string")
        if kind == "intValue":
            number = _integer(inner)
            if number is not None and _INT64[0] <= number <= _INT64[1]:
                return number
            raise Unusable("invalid_value", "intValue is not a 64-bit integer")
        if kind == "boolValue":
            if isinstance(inner, bool):
                return inner
            raise Unusable("invalid_value", "boolValue is not true or false")
        if kind == "doubleValue":
            return _double(inner)
        if kind == "arrayValue" or kind == "kvlistValue":
            self.check_depth(depth + 1)
            items = (inner or {}).get("values", []) if isinstance(inner, dict | None) else None
            if not isinstance(items, list):
                raise Unusable("invalid_value", f"{kind}.values is not a list")
            self.spend(len(items))
            if kind == "arrayValue":
                return [self.any(item, depth + 1) for item in items]
            return self._pairs(items, depth + 1)
        if kind == "bytesValue":
            try:
                return base64.b64decode(inner, validate=True).hex()
            except (binascii.Error, TypeError, ValueError):
                raise Unusable("invalid_value", "bytesValue is not base64") from None
        raise Unusable("invalid_value", f"unknown AnyValue field {kind[:40]!r}")

    def _pairs(self, items: list[Any], depth: int) -> dict[str, Any]:
        result = {}
        for item in items:
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str):
                raise Unusable("invalid_value", "a kvlist entry has no string key")
            result[self.text(key)] = self.any(item.get("value"), depth)
        return result

    def optional_text(self, value: Any, field: str) -> str | None:
        """A string field of the export (a name, a message): text, or None when it is not text."""
        if isinstance(value, str):
            return self.text(value) if value else None
        if value is None:
            return None
        if isinstance(value, int | float):  # bool included
            return str(value)
        self.report.drop(field, "invalid_value", f"{field} is not a string")
        return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _double(value: Any) -> float | str:
    if isinstance(value, str) and value in _NON_FINITE_NAMES:
        return value
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return finite_or_name(float(value))
        except (ValueError, OverflowError):  # not a number; an integer of more than 308 digits
            pass
    raise Unusable("invalid_value", "doubleValue is not a number")


def _id(value: Any, name: str) -> str | None:
    """OTLP JSON carries ids as hex; be lenient with base64 from protobuf's generic JSON mapping."""
    if not value:
        return None
    if not isinstance(value, str):
        raise RejectedRecord("invalid_id", f"{name} is not a string")
    text = value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RejectedRecord("invalid_id", f"{name} {text[:40]!r} is neither hex nor base64") from None
    return hex_id(raw)


def _nanoseconds(value: Any, name: str) -> int:
    if value is None or value == "":
        return 0
    number = _integer(value)
    if number is None:
        shown = repr(value[:40]) if isinstance(value, str) else f"of type {type(value).__name__}"
        raise RejectedRecord("invalid_timestamp", f"{name} {shown} is not a whole number of nanoseconds")
    return number


def _enum(value: Any, names: dict[str, int]) -> int:
    if isinstance(value, str):
        return names.get(value, 0)
    return _integer(value) or 0


def _load(body: bytes) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedExport(f"not JSON ({exc})") from None
    except RecursionError:
        raise MalformedExport("the JSON is nested deeper than its decoder allows (about 1,000 levels)") from None
    if not isinstance(document, dict):
        raise MalformedExport("the body must be a JSON object")
    return document


def _entries(document: dict[str, Any], names: tuple[str, str, str], limits: DecodeLimits) -> list[Any]:
    """The resource entries, after counting every level against the limits (lengths only: cheap)."""
    resources = document.get(names[0]) or []
    if not isinstance(resources, list):
        raise MalformedExport(f"{names[0]} must be a list")
    if len(resources) > limits.max_resources:
        raise TooMuchWork("resource entries", limits.max_resources, "max_resources_per_request")
    scopes = records = 0
    for resource in resources:
        scope_list = resource.get(names[1]) or []
        scopes += len(scope_list)
        if scopes > limits.max_scopes:
            raise TooMuchWork("scope entries", limits.max_scopes, "max_scopes_per_request")
        for scope in scope_list:
            records += len(scope.get(names[2]) or [])
            if records > limits.max_records:
                raise TooMuchWork("spans or log records", limits.max_records, "max_records_per_request")
    return resources


def _resource(entry: dict[str, Any], values: _Values) -> dict[str, Any]:
    values.report.enter_resource()
    values.start_record()
    resource = values.attributes((entry.get("resource") or {}).get("attributes", []))
    values.report.set_service(service_name_of(resource))
    return resource


def _records(
    body: bytes,
    limits: DecodeLimits,
    report: IngestReport,
    cancel: CancelFlag,
    *,
    names: tuple[str, str, str],
    signal: str,
    scope_of: Callable[[dict[str, Any], _Values], str | None] | None,
    convert: Callable[[dict[str, Any], dict[str, Any], str | None, _Values], R],
) -> Iterator[R]:
    """Each record of an export request, converted; a rejected one is reported and skipped, and a
    document of the wrong shape is a MalformedExport naming the `signal` (trace, logs)."""
    document = _load(body)
    values = _Values(report, limits.max_values_per_record)
    _, scopes_key, records_key = names
    try:
        for entry in _entries(document, names, limits):
            resource = _resource(entry, values)
            for scope_entry in entry.get(scopes_key) or []:
                scope = scope_of(scope_entry, values) if scope_of is not None else None
                for record in scope_entry.get(records_key) or []:
                    cancel.check()
                    try:
                        yield convert(record, resource, scope, values)
                    except RejectedRecord as rejected:
                        report.reject(rejected.reason, rejected.detail)
    except _STRUCTURE_ERRORS as exc:
        if isinstance(exc, MalformedExport):
            raise
        raise MalformedExport(f"not an OTLP {signal} export ({exc.__class__.__name__}: {exc})") from None


def _scope_name(scope_entry: dict[str, Any], values: _Values) -> str | None:
    return values.optional_text((scope_entry.get("scope") or {}).get("name"), "scope.name")


def spans_from_json(body: bytes, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag) -> Iterator[OtlpSpan]:
    names = ("resourceSpans", "scopeSpans", "spans")
    yield from _records(body, limits, report, cancel, names=names, signal="trace", scope_of=_scope_name, convert=_span)


def _span(span: dict[str, Any], resource: dict[str, Any], scope: str | None, values: _Values) -> OtlpSpan:
    values.start_record()
    status = span.get("status") or {}
    attributes = values.attributes(span.get("attributes") or [])
    events = span.get("events") or []
    if events:
        try:
            values.spend(len(events))
        except Unusable as unusable:
            values.report.drop("events", unusable.reason, unusable.detail, count=len(events))
            events = []
        else:
            events = [
                {
                    **values.attributes(e.get("attributes") or []),
                    "name": values.optional_text(e.get("name"), "events.name"),
                    EVENT_TIME: _integer(e.get("timeUnixNano")),
                }
                for e in events
            ]
    return OtlpSpan(
        trace_id=_id(span.get("traceId"), "traceId") or "",
        span_id=_id(span.get("spanId"), "spanId") or "",
        parent_span_id=_id(span.get("parentSpanId"), "parentSpanId"),
        name=values.optional_text(span.get("name"), "name") or "",
        kind=_enum(span.get("kind"), _SPAN_KINDS),
        start_ns=_nanoseconds(span.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=_nanoseconds(span.get("endTimeUnixNano"), "endTimeUnixNano"),
        status_code=_enum(status.get("code"), _STATUS_CODES),
        status_message=values.optional_text(status.get("message"), "status.message"),
        attributes=attributes,
        resource=resource,
        scope=scope,
        events=events,
    )


def logs_from_json(body: bytes, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag) -> Iterator[OtlpLog]:
    names = ("resourceLogs", "scopeLogs", "logRecords")
    # Logs keep no scope name: it is not read.
    yield from _records(body, limits, report, cancel, names=names, signal="logs", scope_of=None, convert=_log)


def _log(record: dict[str, Any], resource: dict[str, Any], _scope: str | None, values: _Values) -> OtlpLog:
    values.start_record()
    try:
        body = values.any(record.get("body"), 0)
    except Unusable as unusable:
        values.report.drop("body", unusable.reason, unusable.detail)
        body = None
    time_ns = _nanoseconds(record.get("timeUnixNano"), "timeUnixNano")
    return OtlpLog(
        time_ns=time_ns or _nanoseconds(record.get("observedTimeUnixNano"), "observedTimeUnixNano"),
        severity_number=_enum(record.get("severityNumber"), {}),
        severity_text=values.optional_text(record.get("severityText"), "severityText"),
        body=body,
        trace_id=_id(record.get("traceId"), "traceId"),
        span_id=_id(record.get("spanId"), "spanId"),
        attributes=values.attributes(record.get("attributes") or []),
        resource=resource,
    )
