"""OTLP log records -> LogRecord: severity by number (or text), the body as text, a content id."""

from __future__ import annotations

import hashlib
import json

from observatory_api.core.records import LogRecord
from observatory_api.core.vocabulary import LogSeverity
from observatory_api.ingest.limits import RejectedRecord
from observatory_api.ingest.otlp import OtlpLog
from observatory_api.ingest.report import IngestReport, service_name_of
from observatory_api.ingest.values import as_text, check_time, timestamp_of

_SEVERITIES: tuple[tuple[int, LogSeverity], ...] = (
    (21, "FATAL"),
    (17, "ERROR"),
    (13, "WARN"),
    (9, "INFO"),
    (5, "DEBUG"),
    (1, "TRACE"),
)
_SEVERITY_NAMES: dict[str, LogSeverity] = {name: name for _, name in _SEVERITIES}
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL", "ERR": "ERROR"}


def _severity(number: int, text: str | None) -> LogSeverity:
    for threshold, name in _SEVERITIES:
        if number >= threshold:
            return name
    upper = (text or "").upper()
    return _SEVERITY_NAMES.get(_SEVERITY_TEXT.get(upper, upper), "INFO")


def to_log_record(log: OtlpLog, report: IngestReport) -> LogRecord:
    """Map one OTLP log record; raises RejectedRecord with the reason when it cannot be stored."""
    if log.time_ns == 0:
        raise RejectedRecord("invalid_timestamp", "timeUnixNano or observedTimeUnixNano is required")
    check_time(log.time_ns, "timeUnixNano")
    if log.trace_id is not None and len(log.trace_id) != 32:
        raise RejectedRecord("invalid_id", "traceId must be 16 bytes")
    if log.span_id is not None and len(log.span_id) != 16:
        raise RejectedRecord("invalid_id", "spanId must be 8 bytes")
    resource = dict(log.resource)
    service = service_name_of(resource)
    resource.pop("service.name", None)
    attributes = dict(log.attributes)
    if resource:
        attributes["resource"] = resource
    body = as_text(log.body) or ""
    severity = _severity(log.severity_number, log.severity_text)
    return LogRecord(
        time=timestamp_of(log.time_ns),
        log_id=_log_id(log, severity, body),
        trace_id=log.trace_id,
        span_id=log.span_id,
        service_name=service,
        severity=severity,
        body=body,
        attributes=attributes,
    )


def _log_id(log: OtlpLog, severity: str, body: str) -> str:
    """Derived from the content, so a retried export stores each log line once."""
    identity = json.dumps(
        [log.time_ns, log.trace_id, log.span_id, severity, body, log.attributes, log.resource],
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
