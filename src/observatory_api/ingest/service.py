"""From an OTLP request body to stored rows: decompress, decode, map, write."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from observatory_api.ingest import otlp
from observatory_api.ingest.limits import CancelFlag, DecodeLimits, DecodingCancelled, RejectedRecord
from observatory_api.ingest.log_mapping import to_log_record
from observatory_api.ingest.mapping import to_span_record
from observatory_api.ingest.otlp_json import logs_from_json, spans_from_json
from observatory_api.ingest.otlp_protobuf import logs_from_protobuf, spans_from_protobuf
from observatory_api.ingest.report import IngestReport, Signal, count_refusal
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
    report: IngestReport

    @property
    def rejected(self) -> int:
        return self.report.rejected


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
        raise BodyTooLarge(f"the decompressed body exceeds {max_bytes} bytes (ingest.max_decompressed_bytes)")
    if not inflater.eof:
        raise otlp.MalformedExport("the gzip body is truncated")
    return data


def media_type(content_type: str | None) -> str | None:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind if kind in (otlp.PROTOBUF, otlp.JSON) else None


def _map_all(items: Iterator[T], mapper: Callable[[T, IngestReport], R], report: IngestReport) -> list[R]:
    mapped: list[R] = []
    for item in items:
        try:
            mapped.append(mapper(item, report))
        except RejectedRecord as rejected:
            report.reject(rejected.reason, rejected.detail)
    return mapped


def _span_records(
    body: bytes, kind: str, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag
) -> list[SpanRecord]:
    decode = spans_from_protobuf if kind == otlp.PROTOBUF else spans_from_json
    return _map_all(decode(body, limits, report, cancel), to_span_record, report)


def _log_records(
    body: bytes, kind: str, limits: DecodeLimits, report: IngestReport, cancel: CancelFlag
) -> list[LogRecord]:
    decode = logs_from_protobuf if kind == otlp.PROTOBUF else logs_from_json
    return _map_all(decode(body, limits, report, cancel), to_log_record, report)


async def _decode_in_thread(
    signal: Signal,
    records: Callable[[bytes, str, DecodeLimits, IngestReport, CancelFlag], list[T]],
    body: bytes,
    kind: str,
    limits: DecodeLimits,
) -> tuple[list[T], IngestReport]:
    # Decoding a batch takes tens of milliseconds of CPU: in a thread, the event loop keeps issuing
    # the statements of the transaction in progress meanwhile (the GIL switches every 5 ms), so the
    # database works while Python decodes instead of the two taking turns. A thread cannot be
    # killed: when the request is cancelled (its time limit) the flag tells it to stop at the next
    # record, instead of decoding on for an answer nobody waits for.
    report = IngestReport(signal)
    cancel = CancelFlag()
    decoding = asyncio.ensure_future(asyncio.to_thread(records, body, kind, limits, report, cancel))
    try:
        return await asyncio.shield(decoding), report
    except asyncio.CancelledError:
        cancel.set()
        decoding.add_done_callback(lambda done: _count_cancelled(signal, done))
        raise


def _count_cancelled(signal: Signal, decoding: asyncio.Future[Any]) -> None:
    if not decoding.cancelled() and isinstance(decoding.exception(), DecodingCancelled):
        count_refusal(signal, "cancelled")


async def ingest_traces(writer: TelemetryWriter, body: bytes, kind: str, limits: DecodeLimits) -> IngestResult:
    records, report = await _decode_in_thread("spans", _span_records, body, kind, limits)
    if not records:
        return IngestResult(accepted=0, stored=0, report=report)
    written = await writer.store_spans(records)
    for trace_id, span_id, _ in written.conflicts:
        report.reject("span_id_conflict", f"span {span_id} of trace {trace_id} is stored with another start time")
    return IngestResult(accepted=len(records) - len(written.conflicts), stored=written.stored, report=report)


async def ingest_logs(writer: TelemetryWriter, body: bytes, kind: str, limits: DecodeLimits) -> IngestResult:
    records, report = await _decode_in_thread("logs", _log_records, body, kind, limits)
    stored = await writer.write_logs(records) if records else 0
    return IngestResult(accepted=len(records), stored=stored, report=report)
