"""How exported rows are written, chosen by `format=` or else by the `Accept` header: NDJSON (one
JSON object per line), CSV (one row per record, nested values as JSON text), OTLP/JSON (one export
request per page and line: `exports.otlp`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec

ExportFormat = Literal["ndjson", "csv", "otlp-json", "parquet"]

MEDIA_TYPES: dict[ExportFormat, str] = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "otlp-json": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
_EXTENSIONS: dict[ExportFormat, str] = {
    "ndjson": "ndjson",
    "csv": "csv",
    "otlp-json": "otlp.ndjson",
    "parquet": "parquet",
}
_encoder = msgspec.json.Encoder()


def choose_format(asked: ExportFormat | None, accept: str | None) -> ExportFormat:
    """`format=` wins; else `text/csv` or Parquet's media type in `Accept`; anything else NDJSON."""
    if asked is not None:
        return asked
    if accept and "text/csv" in accept:
        return "csv"
    if accept and MEDIA_TYPES["parquet"] in accept:
        return "parquet"
    return "ndjson"


def attachment_name(resource: str, fmt: ExportFormat) -> str:
    return f"{resource}.{_EXTENSIONS[fmt]}"


class PageWriter(Protocol):
    """Encodes an export page by page; `finish()` is what ends it (the CSV header of an empty
    export, the Parquet footer)."""

    def page(self, records: Sequence[Any]) -> bytes: ...
    def finish(self) -> bytes: ...


class RowWriter:
    """NDJSON or CSV of msgspec Structs of one type; CSV starts with a header of the Struct's fields."""

    def __init__(self, fmt: Literal["ndjson", "csv"], fields: Sequence[str]) -> None:
        self.fmt = fmt
        self._fields = list(fields)
        self._header_written = False

    def page(self, records: Sequence[Any]) -> bytes:
        if self.fmt == "ndjson":
            return _encoder.encode_lines(records)
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        if not self._header_written:
            out.writerow(self._fields)
            self._header_written = True
        for record in records:
            out.writerow([_cell(getattr(record, name)) for name in self._fields])
        return buffer.getvalue().encode()

    def finish(self) -> bytes:
        """Nothing more in NDJSON; in CSV, the header of an export that had no rows."""
        return b"" if self.fmt == "ndjson" or self._header_written else self.page([])


class OtlpWriter:
    """One OTLP/JSON export request per page, on its own line."""

    def __init__(self, request_of: Callable[[Sequence[Any]], dict[str, Any]]) -> None:
        self._request_of = request_of

    def page(self, records: Sequence[Any]) -> bytes:
        return _encoder.encode(self._request_of(records)) + b"\n" if records else b""

    def finish(self) -> bytes:
        return b""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _encoder.encode(value).decode()[1:-1]  # RFC 3339 as in NDJSON and the lists ("...Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _encoder.encode(value).decode()
    return str(value)
