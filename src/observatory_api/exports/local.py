"""Formats the CLI encodes itself from the service's NDJSON export, so that a cut connection is
resumed as an NDJSON export is (`after=` the last complete line): Parquet (a file is unreadable
until its footer, so a cut stream cannot be continued) and OTLP/JSON of logs (a log record carries
no `log_id` to resume after). They are written with the service's own page writers, a page of
PAGE_ROWS records at a time, so the file is the one the service would send (same schema, one row
group per parquet.ROWS_PER_GROUP records, one OTLP request per 1,000).
"""

from __future__ import annotations

from typing import IO, Any

import msgspec

from observatory_api.core.errors import InvalidInput
from observatory_api.exports.formats import ExportFormat, OtlpWriter, PageWriter
from observatory_api.exports.otlp import logs_request
from observatory_api.exports.parquet import ParquetPageWriter
from observatory_api.logs.schemas import LogEntry
from observatory_api.spans.schemas import Span
from observatory_api.traces.schemas import TraceSummary

# The service's list page (query.max_page_size's default): its Parquet read and OTLP request.
PAGE_ROWS = 1_000
RECORDS: dict[str, type[msgspec.Struct]] = {"spans": Span, "traces": TraceSummary, "logs": LogEntry}


def local_writer(resource: str, fmt: ExportFormat) -> PageWriter | None:
    """The writer that encodes `fmt` here from the NDJSON export, or None: ask the service for
    `fmt` itself (NDJSON, CSV and OTLP/JSON of spans and traces resume as they are; Parquet when
    pyarrow is not installed here, which then cannot resume)."""
    if fmt == "parquet":
        try:
            return ParquetPageWriter(RECORDS[resource])
        except InvalidInput:  # no pyarrow in this environment: the service encodes it
            return None
    if fmt == "otlp-json" and resource == "logs":
        return OtlpWriter(logs_request)
    return None


class EncodingOutput:
    """Takes whole NDJSON lines (what the download writes), decodes them into the resource's
    records and writes them to `out` with `writer`, PAGE_ROWS records a page; `close()` writes the
    last page and what ends the file (the Parquet footer). Counts pages and bytes written."""

    def __init__(self, out: IO[bytes], writer: PageWriter, resource: str) -> None:
        self._out = out
        self._writer = writer
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(RECORDS[resource])
        self._records: list[Any] = []
        self.pages = 0
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self._records.extend(self._decoder.decode_lines(data))
        while len(self._records) >= PAGE_ROWS:
            self._page(self._records[:PAGE_ROWS])
            del self._records[:PAGE_ROWS]
        return len(data)

    def close(self) -> None:
        if self._records:
            self._page(self._records)
            self._records = []
        self._put(self._writer.finish())

    def _page(self, records: list[Any]) -> None:
        self.pages += 1
        self._put(self._writer.page(records))

    def _put(self, data: bytes) -> None:
        self._out.write(data)
        self.bytes += len(data)


class CountingOutput:
    """Writes through to `out`, counting bytes (a Parquet file the service encodes)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return self._out.write(data)
