"""OTLP export requests, protobuf or proto3 JSON, end in the same plain shapes.

`OtlpSpan` and `OtlpLog` are what the two decoders (`otlp_protobuf`, `otlp_json`) produce, so
the attribute mapping is written once. Ids become lowercase hex (the JSON encoding already carries
hex; protobuf carries bytes). What both decoders do to values is here too: NUL characters are
removed from strings, non-finite doubles become their proto3 JSON names, and a value nested too
deep or past the record's value budget drops its attribute (noted in the request's report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from observatory_api.ingest.limits import MAX_VALUE_DEPTH, MalformedExport
from observatory_api.ingest.report import DropReason, IngestReport

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

__all__ = ["JSON", "PROTOBUF", "MalformedExport", "OtlpLog", "OtlpSpan", "Unusable", "ValueReader"]


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


class Unusable(Exception):
    """A value that cannot be stored: its attribute is dropped and the report says why."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: DropReason = reason
        self.detail = detail


# Proto3 JSON spells non-finite doubles as strings; jsonb has no NaN (msgspec wrote null, SQLite's
# json.dumps wrote NaN): both backends now store the same text, whichever encoding sent it.
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


_BUDGET = "ingest.max_values_per_record"


def finite_or_name(number: float) -> float | str:
    if math.isfinite(number):
        return number
    return _NON_FINITE.get(number, "NaN")


def hex_id(raw: bytes) -> str | None:
    return raw.hex() if raw and raw.count(0) != len(raw) else None


class ValueReader:
    """Per request: strips NUL characters and keeps each record within its value budget.

    `start_record()` gives a record the budget `ingest.max_values_per_record`; attributes and
    the elements of arrays and kvlists spend it (counted before they are read, so a record with
    millions of values is refused in O(1), not walked).
    """

    __slots__ = ("_limit", "remaining", "report")

    def __init__(self, report: IngestReport, max_values: int) -> None:
        self.report = report
        self._limit = max_values
        self.remaining = max_values

    def start_record(self) -> None:
        self.remaining = self._limit

    def text(self, value: str) -> str:
        return value if "\x00" not in value else self.report.strip(value)

    def spend(self, count: int) -> None:
        self.remaining -= count
        if self.remaining < 0:
            raise Unusable("too_many_values", f"more than {self._limit:,} values in one record, {_BUDGET}")

    def affordable(self, count: int) -> int:
        """How many of `count` top-level attributes fit the budget; the rest are noted as dropped."""
        self.remaining -= count
        if self.remaining >= 0:
            return count
        fitting = max(0, count + self.remaining)
        self.report.drop(
            "attributes past the budget",
            "too_many_values",
            f"more than {self._limit:,} values in one record, {_BUDGET}",
            count=count - fitting,
        )
        return fitting

    def check_depth(self, depth: int) -> None:
        if depth > MAX_VALUE_DEPTH:
            raise Unusable("too_deep", f"nested deeper than {MAX_VALUE_DEPTH} levels")
