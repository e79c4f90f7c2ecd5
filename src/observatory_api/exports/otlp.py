"""Stored spans and logs back into OTLP/JSON export requests (`format=otlp-json`).

Each page becomes one `ExportTraceServiceRequest` (or `ExportLogsServiceRequest`) on one line,
its records grouped by resource and scope. Posting the lines to `/v1/traces` (or `/v1/logs`)
stores the same spans: every column goes back under the first attribute key ingest reads for it
(`ingest.mapping.SPAN_ATTRIBUTES`) that the span's kept attributes do not already hold, and what
ingest moved aside (`resource`, `otel.scope.name`, `events`) goes back where it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from observatory_api.ingest.mapping import SPAN_ATTRIBUTES
from observatory_api.logs.schemas import LogEntry
from observatory_api.spans.schemas import Span

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS = {"ok": "STATUS_CODE_OK", "error": "STATUS_CODE_ERROR"}
_SEVERITY_NUMBERS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
# Span columns written back as attributes: every column ingest maps, but kind, tags and finish
# reason, which need a shape of their own (a column ingest learns to read is exported with it).
_SHAPED_COLUMNS = frozenset({"kind", "tags", "finish_reason"})
_PLAIN_COLUMNS = tuple(column for column in SPAN_ATTRIBUTES if column not in _SHAPED_COLUMNS)
_MOVED_ASIDE = ("resource", "otel.scope.name", "events")


def nanoseconds(moment: datetime) -> int:
    """Exact Unix nanoseconds of a stored (microsecond) time: no float on the way."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def any_value(value: Any) -> dict[str, Any]:
    """A stored attribute value as a proto3 JSON AnyValue (what `ingest.otlp_json` reads back)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": str(value)}


def key_values(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in attributes.items()]


def _free_key(column: str, taken: dict[str, Any]) -> str:
    """The first key ingest reads `column` from that the kept attributes do not use (a blank
    value kept there would otherwise be overwritten)."""
    keys = SPAN_ATTRIBUTES[column]
    return next((key for key in keys if key not in taken), keys[0])


def _span_attributes(span: Span) -> dict[str, Any]:
    kept = {key: value for key, value in span.attributes.items() if key not in _MOVED_ASIDE}
    mapped: dict[str, Any] = {}
    for column in _PLAIN_COLUMNS:
        value = getattr(span, column)
        if value is not None:
            mapped[_free_key(column, kept)] = value
    if span.finish_reason is not None:
        mapped[_free_key("finish_reason", kept)] = [span.finish_reason]
    if span.tags:
        mapped[_free_key("tags", kept)] = list(span.tags)
    # "other" is what ingest makes of no kind attribute (on a span without a model).
    if span.kind != "other":
        mapped[_free_key("kind", kept)] = span.kind
    return {**mapped, **kept}


def _events(span: Span) -> list[dict[str, Any]]:
    stored = span.attributes.get("events")
    if not isinstance(stored, list):
        return []
    events = []
    for event in stored:
        if not isinstance(event, dict):
            continue
        attributes = {key: value for key, value in event.items() if key not in ("name", "time")}
        entry: dict[str, Any] = {"name": event.get("name") or "", "attributes": key_values(attributes)}
        moment = _event_time(event.get("time"))
        if moment is not None:
            entry["timeUnixNano"] = str(nanoseconds(moment))
        events.append(entry)
    return events


def _event_time(value: Any) -> datetime | None:
    """A stored event's RFC 3339 time (UTC when it names no zone); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _resource(service_name: str, attributes: dict[str, Any]) -> dict[str, Any]:
    extra = attributes.get("resource")
    return {"service.name": service_name, **(extra if isinstance(extra, dict) else {})}


def _otlp_span(span: Span) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": str(nanoseconds(span.start_time)),
        "endTimeUnixNano": str(nanoseconds(span.end_time)),
        "attributes": key_values(_span_attributes(span)),
        "status": {"code": _STATUS.get(span.status, "STATUS_CODE_UNSET")},
    }
    if span.parent_span_id is not None:
        entry["parentSpanId"] = span.parent_span_id
    if span.status_message is not None:
        entry["status"]["message"] = span.status_message
    events = _events(span)
    if events:
        entry["events"] = events
    return entry


def _grouped(records: Iterable[tuple[dict[str, Any], str | None, dict[str, Any]]]) -> list[tuple[Any, Any]]:
    """(resource, scope, record) triples grouped by resource, then scope, in order of appearance,
    except that the group of the last record comes last: the last record of a request is the
    last of its page, which is where a cut export resumes (`after=`)."""
    resources: dict[str, tuple[dict[str, Any], dict[str | None, list[dict[str, Any]]]]] = {}
    last: tuple[str, str | None] | None = None
    for resource, scope, record in records:
        key = repr(sorted(resource.items()))
        _, scopes = resources.setdefault(key, (resource, {}))
        scopes.setdefault(scope, []).append(record)
        last = (key, scope)
    if last is not None:
        resource, scopes = resources.pop(last[0])
        scopes[last[1]] = scopes.pop(last[1])
        resources[last[0]] = (resource, scopes)
    return list(resources.values())


def _scope(name: str | None) -> dict[str, Any]:
    return {"name": name} if name else {}


def trace_request(spans: Sequence[Span]) -> dict[str, Any]:
    """One `ExportTraceServiceRequest` holding `spans`."""
    triples = (
        (
            _resource(span.service_name, span.attributes),
            scope if isinstance(scope := span.attributes.get("otel.scope.name"), str) else None,
            _otlp_span(span),
        )
        for span in spans
    )
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values(resource)},
                "scopeSpans": [{"scope": _scope(name), "spans": found} for name, found in scopes.items()],
            }
            for resource, scopes in _grouped(triples)
        ]
    }


def _otlp_log(log: LogEntry) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "timeUnixNano": str(nanoseconds(log.time)),
        "severityNumber": _SEVERITY_NUMBERS.get(log.severity, 0),
        "severityText": log.severity,
        "attributes": key_values({key: value for key, value in log.attributes.items() if key != "resource"}),
    }
    if log.body is not None:
        entry["body"] = {"stringValue": log.body}
    if log.trace_id is not None:
        entry["traceId"] = log.trace_id
    if log.span_id is not None:
        entry["spanId"] = log.span_id
    return entry


def logs_request(logs: Sequence[LogEntry]) -> dict[str, Any]:
    """One `ExportLogsServiceRequest` holding `logs`."""
    triples = ((_resource(log.service_name, log.attributes), None, _otlp_log(log)) for log in logs)
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": key_values(resource)},
                "scopeLogs": [{"scope": {}, "logRecords": found} for found in scopes.values()],
            }
            for resource, scopes in _grouped(triples)
        ]
    }
