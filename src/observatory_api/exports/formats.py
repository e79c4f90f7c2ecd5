"""How exported rows are written: NDJSON (one JSON object per line) or CSV (one row per record,
nested values as JSON text), chosen by `format=` or else by the `Accept` header."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

ExportFormat = Literal["ndjson", "csv"]

MEDIA_TYPES: dict[ExportFormat, str] = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
_EXTENSIONS: dict[ExportFormat, str] = {"ndjson": "ndjson", "csv": "csv"}
_encoder = msgspec.json.Encoder()


def choose_format(asked: ExportFormat | None, accept: str | None) -> ExportFormat:
    """`format=` wins; else `text/csv` in `Accept` means CSV; anything else NDJSON."""
    if asked is not None:
        return asked
    return "csv" if accept and "text/csv" in accept else "ndjson"


def attachment_name(resource: str, fmt: ExportFormat) -> str:
    return f"{resource}.{_EXTENSIONS[fmt]}"


class Writer:
    """Encodes pages of msgspec Structs of one type; CSV starts with a header of the Struct's fields."""

    def __init__(self, fmt: ExportFormat, fields: Sequence[str]) -> None:
        self.fmt = fmt
        self._fields = list(fields)
        self._header_written = False

    def page(self, records: Sequence[msgspec.Struct]) -> bytes:
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

    def empty(self) -> bytes:
        """What an export with no rows is: nothing in NDJSON, the header alone in CSV."""
        return self.page([])


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
