"""OTLP/gRPC ingest in the app's own event loop: the real OpenTelemetry SDK gRPC exporters send to
an app built by `create_app` (both backends), and what they sent is stored; refusals are the status
codes the exporters act on."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import redis
from google.rpc import error_details_pb2
from litestar.testing import TestClient
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from observatory_api.app import create_app
from observatory_api.security.authentication import ACCEPTED_FORMS
from observatory_api.settings import (
    DatabaseSettings,
    FeatureSettings,
    IngestSettings,
    RateLimitSettings,
    Settings,
)
from tests.conftest import make_settings
from tests.integration.ingest.helpers import counter, stored_logs, stored_spans
from tests.integration.ingest.payloads import new_trace_id, span, trace_request
from tests.integration.security.conftest import TEST_REDIS_URL, create_key, redis_settings  # noqa: F401 (the fixture)

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def grpc_settings(database: DatabaseSettings, **sections: Any) -> Settings:
    ingest = sections.pop("ingest", IngestSettings())
    return make_settings(
        database,
        features=FeatureSettings(ingest=True),
        ingest=IngestSettings(**{**_fields(ingest), "grpc_port": free_port()}),
        **sections,
    )


def _fields(ingest: IngestSettings) -> dict[str, Any]:
    return {name: getattr(ingest, name) for name in ingest.__struct_fields__}


class Served:
    def __init__(self, client: TestClient, settings: Settings, key: str) -> None:
        self.client = client
        self.settings = settings
        self.key = key
        self.target = f"127.0.0.1:{client.app.state.grpc_port}"


@pytest.fixture
def served(migrated_database: DatabaseSettings) -> Iterator[Served]:
    settings = grpc_settings(migrated_database)
    key = create_key(settings, role="ingest")
    # The sync client runs the app (and its gRPC server) in a thread of its own: the exporters,
    # which block, are called from the test's thread.
    with TestClient(create_app(settings)) as client:
        yield Served(client, settings, key)


def call_export(target: str, body: bytes, metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, Any]:
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(TRACE_EXPORT)
        try:
            answer = stub(body, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error.code(), error
        return grpc.StatusCode.OK, ExportTraceServiceResponse.FromString(answer)


def test_the_sdk_grpc_exporters_deliver_spans_logs_and_metrics(served: Served) -> None:
    resource = Resource.create({"service.name": "grpc-bot"})
    exporter = OTLPSpanExporter(
        endpoint=served.target, insecure=True, headers={"x-api-key": served.key}, compression=grpc.Compression.Gzip
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("agent.run") as root, tracer.start_as_current_span("chat gpt-4o") as call:
        call.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
        call.set_attributes({"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3})
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    rows = asyncio.run(stored_spans(served.settings.database, trace_id))
    assert sorted(row["name"] for row in rows) == ["agent.run", "chat gpt-4o"]

    logs = LoggerProvider(resource=resource)
    bearer = {"authorization": f"Bearer {served.key}"}
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=served.target, insecure=True, headers=bearer))
    )
    logs.get_logger("tests").emit(body="tool call failed", severity_number=SeverityNumber.ERROR)
    logs.shutdown()
    assert [row["body"] for row in asyncio.run(stored_logs(served.settings.database, "grpc-bot"))] == [
        "tool call failed"
    ]

    before = counter("ingest_metric_points_discarded_total")
    metric_exporter = OTLPMetricExporter(endpoint=served.target, insecure=True, headers={"x-api-key": served.key})
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    histogram = meters.get_meter("tests").create_histogram("gen_ai.client.token.usage", unit="{token}")
    histogram.record(12, {"gen_ai.token.type": "input"})
    histogram.record(3, {"gen_ai.token.type": "output"})
    assert meters.force_flush()
    assert counter("ingest_metric_points_discarded_total") == before + 2
    meters.shutdown()
    assert counter("ingest_grpc_requests_total", signal="spans", code="OK") >= 2


def test_refusals_are_status_codes_the_exporters_act_on(served: Served) -> None:
    body = trace_request([span(new_trace_id(), 0)]).SerializeToString()
    code, error = call_export(served.target, body, ())
    assert code == grpc.StatusCode.UNAUTHENTICATED and ACCEPTED_FORMS in error.details()
    code, error = call_export(served.target, body, (("x-api-key", "obs_0123456789ab_" + "A" * 43),))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "not known" in error.details()
    reader = create_key(served.settings, role="developer")
    code, error = call_export(served.target, body, (("authorization", f"Bearer {reader}"),))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "developer" in error.details()
    before = counter("ingest_requests_refused_total", signal="spans", reason="malformed")
    code, error = call_export(served.target, b"\x0a\xff\xff\xff", (("x-api-key", served.key),))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert counter("ingest_requests_refused_total", signal="spans", reason="malformed") == before + 1
    # Basic with the key as password, as the Collector's basicauth extension sends it.
    import base64

    basic = "Basic " + base64.b64encode(f"collector:{served.key}".encode()).decode()
    code, answer = call_export(served.target, body, (("authorization", basic),))
    assert code == grpc.StatusCode.OK and not answer.HasField("partial_success")


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_rate_limits_and_size_limits_apply_as_on_http(
    migrated_database: DatabaseSettings, store: str, request: pytest.FixtureRequest
) -> None:
    # Both stores: in-process (the embedded default) and Redis, which several workers share.
    sections: dict[str, Any] = {}
    if store == "redis":
        sections["redis"] = request.getfixturevalue("redis_settings")
    settings = grpc_settings(
        migrated_database,
        rate_limit=RateLimitSettings(roles={"ingest": 2}),
        ingest=IngestSettings(max_decompressed_bytes=4096),
        **sections,
    )
    key = create_key(settings, role="ingest")
    with TestClient(create_app(settings)) as client:
        target = f"127.0.0.1:{client.app.state.grpc_port}"
        small = trace_request([span(new_trace_id(), 0)]).SerializeToString()
        big = trace_request([span(new_trace_id(), 0, name="x" * 6000)]).SerializeToString()
        metadata = (("x-api-key", key),)
        code, error = call_export(target, big, metadata)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "ingest.max_decompressed_bytes" in error.details()
        assert call_export(target, small, metadata)[0] == grpc.StatusCode.OK
        code, error = call_export(target, small, metadata)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry = dict(error.trailing_metadata())["google.rpc.retryinfo-bin"]
        assert error_details_pb2.RetryInfo.FromString(retry).retry_delay.seconds >= 1
        # The same bucket as POST /v1/traces: HTTP is refused too now.
        gzipped = gzip.compress(small)
        http = client.post(
            "/v1/traces",
            content=gzipped,
            headers={"x-api-key": key, "content-type": "application/x-protobuf", "content-encoding": "gzip"},
        )
        assert http.status_code == 429
    if store == "redis":  # the counts were kept in Redis, where other workers see them
        prefix = settings.redis.key_prefix
        with redis.Redis.from_url(TEST_REDIS_URL) as shared:
            assert any(b"limit" in key.lower() for key in shared.scan_iter(match=f"{prefix}:*")), prefix


async def test_busy_write_slots_answer_unavailable_with_retry_info_and_drain_at_shutdown(pg_template: str) -> None:
    from tests.conftest import _pg_url, scratch_database, table_locked
    from tests.integration.ingest.test_back_pressure import _until_a_write_waits_on_the_lock

    async with scratch_database(pg_template, label="grpcbusy") as name:
        database = DatabaseSettings(url=_pg_url(name))
        settings = grpc_settings(database, ingest=IngestSettings(max_concurrent_writes=1))
        key = await asyncio.to_thread(create_key, settings, role="ingest")
        first_id, second_id = new_trace_id(), new_trace_id()
        first = trace_request([span(first_id, 0)]).SerializeToString()
        second = trace_request([span(second_id, 0)]).SerializeToString()
        metadata = (("x-api-key", key),)
        # Entered and left by hand: the test leaves it (shutdown) while an export is in flight.
        client = TestClient(create_app(settings))
        client.__enter__()
        target = f"127.0.0.1:{client.app.state.grpc_port}"
        stopping: asyncio.Task[object] | None = None
        try:
            async with table_locked(name, "spans", "SHARE") as watcher:
                writing = asyncio.create_task(asyncio.to_thread(call_export, target, first, metadata))
                await _until_a_write_waits_on_the_lock(watcher, name)
                code, error = await asyncio.to_thread(call_export, target, second, metadata)
                assert code == grpc.StatusCode.UNAVAILABLE and error.details() == "ingest is busy; retry later"
                retry = dict(error.trailing_metadata())["google.rpc.retryinfo-bin"]
                assert error_details_pb2.RetryInfo.FromString(retry).retry_delay.seconds == 2
                # Shutdown begins while the first export is still held by the lock...
                stopping = asyncio.create_task(asyncio.to_thread(client.__exit__, None, None, None))
                await asyncio.sleep(0.5)
                assert not writing.done()
            # ...and the lock released, the export in flight completes before the server stops.
            code, answer = await writing
            await stopping
        finally:
            if stopping is None:
                client.__exit__(None, None, None)
        assert code == grpc.StatusCode.OK, answer
        rows = await stored_spans(database, first_id.hex())
        assert len(rows) == 1
        assert await stored_spans(database, second_id.hex()) == []


async def test_a_write_the_database_does_not_finish_in_time_is_unavailable_then_retried(pg_template: str) -> None:
    from tests.conftest import _pg_url, scratch_database, table_locked

    async with scratch_database(pg_template, label="grpcslow") as name:
        database = DatabaseSettings(url=_pg_url(name), statement_timeout_ms=300)
        settings = grpc_settings(database)
        key = await asyncio.to_thread(create_key, settings, role="ingest")
        trace_id = new_trace_id()
        body = trace_request([span(trace_id, 0)]).SerializeToString()
        metadata = (("x-api-key", key),)
        with TestClient(create_app(settings)) as client:
            target = f"127.0.0.1:{client.app.state.grpc_port}"
            async with table_locked(name, "spans", "SHARE"):  # writes wait, reads go on
                code, error = await asyncio.to_thread(call_export, target, body, metadata)
            assert code == grpc.StatusCode.UNAVAILABLE, error
            retry = dict(error.trailing_metadata())["google.rpc.retryinfo-bin"]
            assert error_details_pb2.RetryInfo.FromString(retry).retry_delay.seconds == 5
            assert await stored_spans(database, trace_id.hex()) == []
            code, _ = await asyncio.to_thread(call_export, target, body, metadata)
        assert code == grpc.StatusCode.OK
        assert len(await stored_spans(database, trace_id.hex())) == 1
