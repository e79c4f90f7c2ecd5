"""What one OTLP request may cost to decode, and the errors that end its decoding.

The body's size is bounded by `server.max_body_bytes` and its decompressed size by
`ingest.max_decompressed_bytes`; within that, the number of entries and of attribute values is
bounded too (a few kilobytes of gzip can expand into millions of empty entries), and decoding
stops between records once the request has been cancelled (a timeout).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

# The reasons a record is rejected: label values of `ingest_records_rejected_total`.
# `span_id_conflict`: a span whose (trace_id, span_id) is stored, or sent, with another start time.
RejectReason = Literal["invalid_id", "invalid_timestamp", "undecodable", "span_id_conflict"]

# Nested arrays and kvlists deeper than this are dropped with their attribute. Kept below what
# the protobuf parser itself refuses (~32 kvlist levels) so both encodings draw the line alike.
MAX_VALUE_DEPTH = 20
# Timestamps outside [2000-01-01, 2100-01-01) reject their span or log record: the range holds
# any real telemetry with a wide margin, and every database and datetime type can store it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_NS = int(EARLIEST.timestamp()) * 1_000_000_000
LATEST_NS = int(LATEST.timestamp()) * 1_000_000_000


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Per request; built from the `ingest` settings section (where the defaults are)."""

    max_resources: int
    max_scopes: int
    max_records: int
    # Attribute values of one record, nested elements included (counted before they are read).
    max_values_per_record: int


class MalformedExport(ValueError):
    """The body is not an OTLP export request in the declared encoding (400 for the whole request)."""


class TooMuchWork(Exception):
    """The request holds more entries than a limit allows: refused (413) before decoding them."""

    def __init__(self, what: str, limit: int, setting: str) -> None:
        self.what = what
        self.limit = limit
        self.setting = setting
        super().__init__(f"the export holds more than {limit:,} {what} (ingest.{setting})")


class RejectedRecord(Exception):
    """A span or log record that cannot be stored; the others of its request are."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RejectReason = reason
        self.detail = detail


class DecodingCancelled(Exception):
    """The request was cancelled (it timed out) while its body was being decoded."""


class CancelFlag:
    """Set by the request's task when it is cancelled; the decoding thread checks it between records."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise DecodingCancelled
