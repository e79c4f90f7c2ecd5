"""Warm start: before the worker says it is ready, one export runs the whole ingest path, rolled back.

The first exports to a new worker took seconds (issue 14: 3.6-9 s under load, near the
exporters' 10 s timeout): the decoder's and the writer's modules and the price catalogue were
loaded, the write pool connected, every INSERT and summary statement compiled and prepared on
its connection, all on the first batch's clock. A synthetic export now goes through decoding,
mapping and the writer at start-up, in transactions that are rolled back: nothing is stored, and
the compiled statements and the loaded modules stay. Then the write pool opens the connections
the concurrent writes will use (each connection's set-up is paid here too). One full pass, not one
per connection: concurrent passes wait on each other's rollup rows until they roll back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from observatory_api.db.capabilities import DatabaseCapabilities
from observatory_api.db.engine import pooled_connections
from observatory_api.ingest import otlp
from observatory_api.ingest.limits import DecodeLimits
from observatory_api.ingest.service import ingest_logs, ingest_traces
from observatory_api.storage import TelemetryWriter

logger = logging.getLogger("observatory_api.ingest.warmup")


class _RolledBack:
    """The engine as the writer sees it, except that its write transactions are rolled back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.dialect = engine.dialect

    def connect(self) -> Any:
        return self._engine.connect()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            transaction = await conn.begin()
            try:
                yield conn
            finally:
                await transaction.rollback()


def _text(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


def warmup_bodies(index: int) -> tuple[bytes, bytes]:
    """A GenAI chat span under an agent span, and one log line, as OTLP protobuf; ids of `index`."""
    now = time.time_ns()
    trace_id = (0xFEED << 112 | index).to_bytes(16, "big")
    resource = Resource(attributes=[_text("service.name", "observatory-warmup")])
    root = Span(trace_id=trace_id, span_id=(2 * index + 1).to_bytes(8, "big"), name="warmup")
    root.start_time_unix_nano, root.end_time_unix_nano = now - 2_000_000, now
    call = Span(
        trace_id=trace_id,
        span_id=(2 * index + 2).to_bytes(8, "big"),
        parent_span_id=root.span_id,
        name="chat gpt-4o-mini",
        attributes=[
            _text("gen_ai.operation.name", "chat"),
            _text("gen_ai.provider.name", "openai"),
            _text("gen_ai.request.model", "gpt-4o-mini"),
            _text("gen_ai.usage.input_tokens", 10),
            _text("gen_ai.usage.output_tokens", 5),
            _text("session.id", f"warmup-{index}"),
        ],
    )
    call.start_time_unix_nano, call.end_time_unix_nano = now - 1_000_000, now
    spans = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[root, call])])]
    )
    line = LogRecord(
        time_unix_nano=now,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
        body=AnyValue(string_value="warmup"),
        trace_id=trace_id,
    )
    logs = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=[line])])]
    )
    return spans.SerializeToString(), logs.SerializeToString()


async def _one(engine: AsyncEngine, capabilities: DatabaseCapabilities, limits: DecodeLimits, index: int) -> None:
    # A writer of its own (its own group commit): each warm-up holds its own connection.
    writer = TelemetryWriter(cast(AsyncEngine, _RolledBack(engine)), capabilities=capabilities)
    spans, logs = warmup_bodies(index)
    await ingest_traces(writer, spans, otlp.PROTOBUF, limits)
    await ingest_logs(writer, logs, otlp.PROTOBUF, limits)


async def _open(engine: AsyncEngine, opened: asyncio.Barrier) -> None:
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
        await opened.wait()  # held until all are open: each one is a connection of its own


async def warm_up(
    engine: AsyncEngine, capabilities: DatabaseCapabilities, limits: DecodeLimits, *, connections: int
) -> float:
    """Run the ingest path once, rolled back, then open `connections` pool connections (one on
    SQLite); returns the seconds it took. A failure is logged, never fatal: the first real export
    then pays the cost, as before."""
    started = time.perf_counter()
    count = pooled_connections(engine, connections)
    try:
        await _one(engine, capabilities, limits, 0)
        opened = asyncio.Barrier(count)
        await asyncio.wait_for(asyncio.gather(*(_open(engine, opened) for _ in range(count))), timeout=30)
    except Exception:
        logger.warning("ingest warm-up failed; the first exports will be slower", exc_info=True)
    return time.perf_counter() - started
