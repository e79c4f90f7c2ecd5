"""OTLP/HTTP ingest end to end: the real OpenTelemetry SDK exporters send to a running server,
and the REST API returns what they sent."""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, Status, StatusCode

from tests.integration.ingest.conftest import IngestServer

# The server of conftest.py verifies tokens signed with the tests' secret; admin may write and read.
RESOURCE = Resource.create({"service.name": "support-bot", "deployment.environment.name": "staging", "team": "ml"})


def recent() -> dict[str, str]:
    """A window around now, where the spans just recorded fall."""
    now = datetime.now(UTC)
    return {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}


def record_spans(style: str) -> list[ReadableSpan]:
    """A small agent trace: a root chain span and one LLM call, in GenAI or OpenInference style."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("agent.run") as root:
        root.set_attribute(
            "gen_ai.operation.name" if style == "genai" else "openinference.span.kind",
            "invoke_agent" if style == "genai" else "AGENT",
        )
        with tracer.start_as_current_span("chat gpt-4o") as call:
            if style == "genai":
                call.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.system": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.response.model": "gpt-4o-2024-08-06",
                        "gen_ai.usage.prompt_tokens": 1200,
                        "gen_ai.usage.output_tokens": 300,
                        "gen_ai.usage.cache_read.input_tokens": 1000,
                        "gen_ai.response.finish_reasons": ["stop"],
                        "gen_ai.conversation.id": "conv-42",
                        "user.id": "user-7",
                        "gen_ai.input.messages": json.dumps([{"role": "user", "content": "Where is my order?"}]),
                        "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": "It ships today."}]),
                        "custom.flag": True,
                    }
                )
            else:
                call.set_attributes(
                    {
                        "openinference.span.kind": "LLM",
                        "llm.provider": "anthropic",
                        "llm.model_name": "claude-sonnet-4",
                        "llm.token_count.prompt": 800,
                        "llm.token_count.completion": 120,
                        "llm.token_count.completion_details.reasoning": 40,
                        "session.id": "sess-9",
                        "user.id": "user-8",
                        "input.value": "Summarise the ticket",
                        "output.value": "The customer wants a refund.",
                        "tag.tags": ["support", "beta"],
                        "metadata": json.dumps({"tier": "gold"}),
                    }
                )
            call.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def trace_id_of(spans: list[ReadableSpan]) -> str:
    return format(spans[0].context.trace_id, "032x")


def otlp_json(spans: list[ReadableSpan]) -> bytes:
    """The proto3 JSON encoding of OTLP: like protobuf's JSON mapping, but ids in hex."""
    document = MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def get_trace(server: IngestServer, trace_id: str) -> dict[str, Any]:
    for _ in range(50):
        response = httpx.get(f"{server.base}/api/v1/traces/{trace_id}", headers=server.reader, timeout=10)
        if response.status_code == 200:
            return response.json()
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} never appeared: {response.text}")


def llm_span(detail: dict[str, Any]) -> dict[str, Any]:
    (root,) = detail["spans"]
    (child,) = root["children"]
    return child


def test_genai_spans_from_the_sdk_exporter_with_gzip(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("genai")
    exporter = OTLPSpanExporter(
        endpoint=f"{base}/v1/traces", compression=Compression.Gzip, headers=server.otlp_headers()
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    detail = get_trace(server, trace_id_of(spans))
    assert detail["service_name"] == "support-bot"
    assert detail["environment"] == "staging"
    assert detail["span_count"] == 2
    assert detail["llm_call_count"] == 1
    call = llm_span(detail)
    assert call["kind"] == "llm"
    assert (call["provider"], call["model"]) == ("openai", "gpt-4o-2024-08-06")
    assert (call["input_tokens"], call["output_tokens"], call["total_tokens"]) == (1200, 300, 1500)
    assert call["cache_read_input_tokens"] == 1000
    assert call["finish_reason"] == "stop"
    assert (call["session_id"], call["user_id"]) == ("conv-42", "user-7")
    assert "Where is my order?" in call["input"]
    assert "ships today" in call["output"]
    assert call["status"] == "ok"
    assert call["attributes"]["custom.flag"] is True
    resource = call["attributes"]["resource"]
    assert resource["team"] == "ml"
    assert "service.name" not in resource  # mapped to service_name, not kept twice
    assert "gen_ai.request.model" in call["attributes"]
    assert "gen_ai.response.model" not in call["attributes"]


def test_openinference_spans_as_json(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("openinference")
    response = httpx.post(
        f"{base}/v1/traces",
        content=otlp_json(spans),
        headers={**server.otlp_headers(), "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    detail = get_trace(server, trace_id_of(spans))
    call = llm_span(detail)
    assert (call["provider"], call["model"]) == ("anthropic", "claude-sonnet-4")
    assert (call["input_tokens"], call["output_tokens"], call["reasoning_output_tokens"]) == (800, 120, 40)
    assert call["tags"] == ["support", "beta"]
    assert (call["session_id"], call["input"]) == ("sess-9", "Summarise the ticket")
    assert json.loads(call["attributes"]["metadata"]) == {"tier": "gold"}
    assert detail["spans"][0]["kind"] == "agent"
    assert detail["session_id"] is None or detail["session_id"] == "sess-9"


def test_a_retried_export_stores_nothing_twice(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("genai")
    exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=server.otlp_headers())
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    body = otlp_json(spans)
    assert httpx.post(
        f"{base}/v1/traces", content=body, headers={**server.otlp_headers(), "Content-Type": "application/json"}
    ).is_success
    detail = get_trace(server, trace_id_of(spans))
    assert detail["span_count"] == 2
    listed = httpx.get(
        f"{base}/api/v1/spans", params={**recent(), "trace_id": trace_id_of(spans)}, headers=server.reader
    ).json()
    assert len(listed["data"]) == 2


def test_partial_success_names_the_rejected_spans(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("genai")
    document = json.loads(otlp_json(spans))
    broken = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    broken["spanId"] = "abcd"  # too short
    response = httpx.post(f"{base}/v1/traces", json=document, headers=server.otlp_headers(), timeout=10)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "spanId" in partial["errorMessage"]


def test_an_infinite_cost_is_dropped_by_name_and_the_span_stored(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("genai")
    document = json.loads(otlp_json(spans))
    # Proto3 JSON allows "Infinity" for doubles: not a cost anything can add up. The span is
    # stored without it (once it was rejected whole, and the exporter ignored partial_success).
    infinite = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    infinite["attributes"].append({"key": "gen_ai.usage.cost", "value": {"doubleValue": "Infinity"}})
    response = httpx.post(f"{base}/v1/traces", json=document, headers=server.otlp_headers(), timeout=10)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "0"
    assert partial["errorMessage"] == (
        "1 attribute dropped: gen_ai.usage.cost (cost_usd must be a finite non-negative number)"
    )
    detail = get_trace(server, trace_id_of(spans))
    assert detail["span_count"] == 2
    stored = detail["spans"][0]
    assert stored["name"] == infinite["name"]
    assert "gen_ai.usage.cost" not in stored["attributes"]


def test_refusals(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    protobuf = {"Content-Type": "application/x-protobuf"}
    malformed = httpx.post(
        f"{base}/v1/traces", content=b"\xff\xff\xff not protobuf", headers={**server.otlp_headers(), **protobuf}
    )
    assert malformed.status_code == 400
    assert malformed.headers["content-type"].startswith("application/problem+json")
    assert (
        httpx.post(
            f"{base}/v1/traces", content=b"x", headers={**server.otlp_headers(), "Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    wrong_type = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5, "attributes": "nope"}]}]}]}
    assert httpx.post(f"{base}/v1/traces", json=wrong_type, headers=server.otlp_headers()).status_code == 400
    assert (
        httpx.post(
            f"{base}/v1/traces", content=b"{", headers={**server.otlp_headers(), "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    bomb = gzip.compress(b"\x00" * (11 * 1024 * 1024))  # expands past the 10 MiB body limit
    gzipped = {**protobuf, "Content-Encoding": "gzip"}
    assert (
        httpx.post(f"{base}/v1/traces", content=bomb, headers={**server.otlp_headers(), **gzipped}).status_code == 413
    )
    assert (
        httpx.post(
            f"{base}/v1/traces", content=b"x", headers={**server.otlp_headers(), **protobuf, "Content-Encoding": "br"}
        ).status_code
        == 415
    )
    too_big = b"\x00" * (11 * 1024 * 1024)
    assert (
        httpx.post(
            f"{base}/v1/traces", content=too_big, headers={**server.otlp_headers(), **protobuf}, timeout=30
        ).status_code
        == 413
    )


def test_logs_from_the_sdk_exporter(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("genai")
    assert (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=server.otlp_headers()).export(spans)
        == SpanExportResult.SUCCESS
    )
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("tests")
    trace_id = spans[0].context.trace_id
    span_context = trace.set_span_in_context(NonRecordingSpan(spans[0].context))
    logger.emit(
        timestamp=time.time_ns(),
        context=span_context,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="retrying the tool call",
        attributes={"attempt": 2},
    )
    provider.shutdown()
    exporter = OTLPLogExporter(endpoint=f"{base}/v1/logs", headers=server.otlp_headers())
    records = memory.get_finished_logs()
    assert exporter.export(records).name == "SUCCESS"
    assert exporter.export(records).name == "SUCCESS"  # a retry
    hex_id = format(trace_id, "032x")
    logs = httpx.get(f"{base}/api/v1/logs", params={**recent(), "trace_id": hex_id}, headers=server.reader).json()
    assert [entry["body"] for entry in logs["data"]] == ["retrying the tool call"]
    assert logs["data"][0]["severity"] == "WARN"
    assert logs["data"][0]["service_name"] == "support-bot"


def test_ingest_needs_an_ingest_credential_and_grants_no_reads(ingest_server: IngestServer) -> None:
    base, server = ingest_server.base, ingest_server
    spans = record_spans("genai")
    assert OTLPSpanExporter(endpoint=f"{base}/v1/traces").export(spans) == SpanExportResult.FAILURE
    body = otlp_json(spans)
    json_type = {"Content-Type": "application/json"}
    missing = httpx.post(f"{base}/v1/traces", content=body, headers=json_type)
    assert missing.status_code == 401
    reader = httpx.post(f"{base}/v1/traces", content=body, headers={**json_type, **server.reader})
    assert reader.status_code == 403  # a developer reads; it does not write
    assert httpx.get(f"{base}/api/v1/traces", headers=server.otlp_headers()).status_code == 403
    # Nothing was stored by the refused attempts.
    listed = httpx.get(
        f"{base}/api/v1/spans", params={**recent(), "trace_id": trace_id_of(spans)}, headers=server.reader
    )
    assert listed.json()["data"] == []
