"""From an OTLP request body to stored rows: decompress, decode, map, write."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from observatory_api.ingest import otlp
from observatory_api.ingest.mapping import RejectedSpan, to_log_record, to_span_record
from observatory_api.storage import LogRecord, SpanRecord, TelemetryWriter

T = TypeVar("T")
R = TypeVar("R")


class UnsupportedEncoding(ValueError):
    pass


class BodyTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    stored: int
    rejected: int
    error_message: str | None


def decompress(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """gzip or identity; the decompressed size is bounded too (a small gzip can expand enormously)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; use gzip or identity")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise otlp.MalformedExport(f"the gzip body is corrupt ({exc})") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the decompressed body exceeds {max_bytes} bytes")
    if not inflater.eof:
        raise otlp.MalformedExport("the gzip body is truncated")
    return data


def media_type(content_type: str | None) -> str | None:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind if kind in (otlp.PROTOBUF, otlp.JSON) else None


def _map_all(items: Iterator[T], mapper: Callable[[T], R]) -> tuple[list[R], int, str | None]:
    mapped: list[R] = []
    rejected, first_error = 0, None
    for item in items:
        try:
            mapped.append(mapper(item))
        except RejectedSpan as exc:
            rejected += 1
            first_error = first_error or str(exc)
    return mapped, rejected, first_error


def _span_records(body: bytes, kind: str) -> tuple[list[SpanRecord], int, str | None]:
    decoded = otlp.spans_from_protobuf(body) if kind == otlp.PROTOBUF else otlp.spans_from_json(body)
    return _map_all(iter(list(decoded)), to_span_record)


def _log_records(body: bytes, kind: str) -> tuple[list[LogRecord], int, str | None]:
    decoded = otlp.logs_from_protobuf(body) if kind == otlp.PROTOBUF else otlp.logs_from_json(body)
    return _map_all(iter(list(decoded)), to_log_record)


# Decoding a batch takes tens of milliseconds of CPU: in a thread, the event loop keeps issuing
# the statements of the transaction in progress meanwhile (the GIL switches every 5 ms), so the
# database works while Python decodes instead of the two taking turns.
async def ingest_traces(writer: TelemetryWriter, body: bytes, kind: str) -> IngestResult:
    records, rejected, error = await asyncio.to_thread(_span_records, body, kind)
    stored = await writer.write_spans(records) if records else 0
    return IngestResult(accepted=len(records), stored=stored, rejected=rejected, error_message=error)


async def ingest_logs(writer: TelemetryWriter, body: bytes, kind: str) -> IngestResult:
    records, rejected, error = await asyncio.to_thread(_log_records, body, kind)
    stored = await writer.write_logs(records) if records else 0
    return IngestResult(accepted=len(records), stored=stored, rejected=rejected, error_message=error)
