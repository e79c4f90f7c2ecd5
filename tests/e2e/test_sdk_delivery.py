"""Issue 14's acceptance: the OpenTelemetry SDK's gRPC exporter, its HTTP exporter, and an HTTP
exporter sending `Authorization: Bearer <key>` each deliver the same 1,000 spans to a real
two-worker granian server on PostgreSQL, with nothing lost and nothing doubled, although the
server is restarted (SIGTERM, then started again on the same ports) in the middle of each
delivery: the exporters retry until it is back. Metric exports answer without a client error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from tests.conftest import RUN_ID, TEST_AUTH, _create_database, _drop_database, _pg_url
from tests.e2e.server import UNSET, RunningServer, free_port, start_server, stop

pytestmark = pytest.mark.e2e
TRACES, SPANS_PER_TRACE, BATCH = 100, 10, 50
INPUT_TOKENS = 7
# The exporters' own time limit per export, retries included: long enough to outlast a restart.
EXPORT_TIMEOUT = 90


class Target(NamedTuple):
    base: str
    grpc: str
    key: str


class Restartable:
    """A server whose ports and database survive `restart()`."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env, self.port = workdir, env, free_port()
        self._stack = contextlib.ExitStack()
        self.server: RunningServer = self._start()

    def _start(self) -> RunningServer:
        return self._stack.enter_context(start_server(self.workdir, workers=2, env=self.env, port=self.port))

    def stop(self) -> None:
        stop(self.server.process)

    def start(self) -> None:
        self.server = self._start()

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pg_template: str) -> Iterator[tuple[Restartable, Target, str]]:
    workdir = tmp_path_factory.mktemp("delivery")
    database = f"observatory_test_{RUN_ID}_delivery_{uuid.uuid4().hex[:6]}"
    asyncio.run(_create_database(database, template=pg_template))
    url = _pg_url(database)
    env = {
        **{k: v for k, v in os.environ.items() if k not in UNSET},
        "ENVIRONMENT": "test",
        "INGEST_ENABLED": "true",
        "INGEST_GRPC_PORT": str(free_port()),
        "DATABASE_URL": url,
        "JWT_SECRET": TEST_AUTH.jwt_secret or "",
        "SECRET_KEY": TEST_AUTH.secret_key or "",
        "RATE_LIMIT_ENABLED": "false",
    }
    command = [sys.executable, "-m", "observatory_api", "keys", "create", "--name", "sdk", "--role", "ingest"]
    key = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout.strip()
    running = Restartable(workdir, env)
    try:
        target = Target(running.server.base, f"127.0.0.1:{env['INGEST_GRPC_PORT']}", key)
        yield running, target, url
    finally:
        running.close()
        asyncio.run(_drop_database(database))


def the_spans(transport: int) -> list[ReadableSpan]:
    """The same 1,000 spans for every transport (100 traces of a root and 9 LLM calls); the
    transport's number in the trace ids keeps the three deliveries apart in one database."""
    resource = Resource.create({"service.name": "delivery"})
    now = time.time_ns()
    spans = []
    for trace in range(TRACES):
        trace_id = (0xACCE << 112) | (transport << 64) | (trace + 1)
        root = SpanContext(trace_id, 1, is_remote=False, trace_flags=TraceFlags(1))
        for index in range(SPANS_PER_TRACE):
            start = now - 60_000_000_000 + trace * 10_000_000 + index * 1_000_000
            attributes: dict[str, str | int] = {"gen_ai.operation.name": "chat" if index else "invoke_agent"}
            if index:
                attributes |= {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": INPUT_TOKENS}
            spans.append(
                ReadableSpan(
                    name=f"step {index}",
                    context=SpanContext(trace_id, index + 1, is_remote=False, trace_flags=TraceFlags(1)),
                    parent=None if index == 0 else root,
                    resource=resource,
                    attributes=attributes,
                    kind=SpanKind.CLIENT,
                    status=Status(StatusCode.OK),
                    start_time=start,
                    end_time=start + 500_000,
                )
            )
    return spans


def deliver_across_a_restart(server: Restartable, exporter: SpanExporter, spans: list[ReadableSpan]) -> None:
    """Half the batches, then the server stops; once it is down the exporter goes on (its next
    export meets no server and retries) and the server starts again on the same ports."""
    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    half = len(batches) // 2
    halfway, down = threading.Event(), threading.Event()
    results: list[SpanExportResult] = []

    def send() -> None:
        for number, batch in enumerate(batches):
            if number == half:
                halfway.set()
                down.wait(timeout=120)
            results.append(exporter.export(batch))

    sender = threading.Thread(target=send)
    sender.start()
    assert halfway.wait(timeout=120)
    server.stop()
    down.set()
    time.sleep(2)
    server.start()
    sender.join(timeout=EXPORT_TIMEOUT * 2)
    assert not sender.is_alive()
    assert results == [SpanExportResult.SUCCESS] * len(batches), results


async def stored(url: str, transport: int) -> tuple[set[tuple[str, str]], list[tuple[int, int]]]:
    prefix = f"acce{transport:012x}"[:16]
    conn = await asyncpg.connect(url)
    try:
        keys = await conn.fetch("SELECT trace_id, span_id FROM spans WHERE trace_id LIKE $1", prefix + "%")
        summaries = await conn.fetch("SELECT span_count, input_tokens FROM traces WHERE trace_id LIKE $1", prefix + "%")
    finally:
        await conn.close()
    return {(row["trace_id"], row["span_id"]) for row in keys}, [
        (r["span_count"], r["input_tokens"]) for r in summaries
    ]


EXPORTERS: dict[str, Callable[[Target], SpanExporter]] = {
    "grpc": lambda t: GrpcSpanExporter(
        endpoint=t.grpc, insecure=True, headers={"x-api-key": t.key}, timeout=EXPORT_TIMEOUT
    ),
    "http": lambda t: HttpSpanExporter(
        endpoint=f"{t.base}/v1/traces", headers={"x-api-key": t.key}, timeout=EXPORT_TIMEOUT
    ),
    "http-bearer": lambda t: HttpSpanExporter(
        endpoint=f"{t.base}/v1/traces", headers={"Authorization": f"Bearer {t.key}"}, timeout=EXPORT_TIMEOUT
    ),
}


@pytest.mark.parametrize("name", list(EXPORTERS))
def test_each_exporter_delivers_1000_spans_once_across_a_restart(
    name: str, server: tuple[Restartable, Target, str], caplog: pytest.LogCaptureFixture
) -> None:
    running, target, url = server
    transport = list(EXPORTERS).index(name) + 1
    spans = the_spans(transport)
    exporter = EXPORTERS[name](target)
    try:
        with caplog.at_level(logging.WARNING, logger="opentelemetry"):
            deliver_across_a_restart(running, exporter, spans)
    finally:
        exporter.shutdown()
    # The restart was met: the exporter said it would retry (and then succeeded).
    assert any("retrying" in record.getMessage() for record in caplog.records), caplog.text
    keys, summaries = asyncio.run(stored(url, transport))
    expected = {(format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")) for s in spans}
    assert keys == expected  # nothing lost, nothing else
    # Nothing doubled: a retried batch adds nothing to the summaries either.
    assert summaries == [(SPANS_PER_TRACE, (SPANS_PER_TRACE - 1) * INPUT_TOKENS)] * TRACES
    log = running.server.log.read_text()
    assert log.count("OTLP/gRPC ingest listening") >= 4, "both workers serve gRPC, before and after the restart"


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_metric_exports_succeed_without_a_client_error(
    transport: str, server: tuple[Restartable, Target, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, target, _ = server
    exporter: MetricExporter
    if transport == "grpc":
        exporter = GrpcMetricExporter(endpoint=target.grpc, insecure=True, headers={"x-api-key": target.key})
    else:
        exporter = HttpMetricExporter(endpoint=f"{target.base}/v1/metrics", headers={"x-api-key": target.key})
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(resource=Resource.create({"service.name": "delivery"}), metric_readers=[reader])
    usage = meters.get_meter("tests").create_histogram("gen_ai.client.token.usage", unit="{token}")
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        usage.record(120, {"gen_ai.token.type": "input"})
        assert meters.force_flush()
        meters.shutdown()
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry")]
