"""OTLP/protobuf export bodies that look like real LLM traffic, made deterministically.

The demo generator gives the trace shapes (kinds, models, users, sessions, errors, timings); each
span then gets what real instrumentations send beside it: GenAI semantic-convention attributes and
OpenInference's (indexed input/output messages, `llm.invocation_parameters` JSON, token counts,
`input.value`/`output.value` with their mime types, retrieval documents, tool parameters), inputs
of up to 4,000 characters and outputs of up to 2,000, and an SDK resource. Averaged over a
dataset: ~2.6 KB of attribute text per span.

    from bench.realistic_otlp import export_bodies
    bodies = export_bodies(spans=20_000, batch=512, seed=7)   # list of (span count, protobuf bytes)
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from bench.ingest_throughput import live_timing
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status
from tests.integration.ingest.payloads import key_values

from observatory_api.core.records import SpanRecord
from observatory_api.demo.generator import generate

_WORDS = [
    "the",
    "customer",
    "asked",
    "about",
    "their",
    "invoice",
    "and",
    "the",
    "refund",
    "policy",
    "for",
    "annual",
    "plans",
    "while",
    "the",
    "agent",
    "looked",
    "up",
    "the",
    "order",
    "history",
    "retrieved",
    "three",
    "documents",
    "from",
    "the",
    "knowledge",
    "base",
    "summarised",
    "the",
    "terms",
    "of",
    "service",
    "and",
    "drafted",
    "an",
    "answer",
    "that",
    "cites",
    "the",
    "relevant",
    "section",
    "with",
    "a",
    "short",
    "apology",
    "for",
    "the",
    "delay",
    "please",
    "confirm",
    "the",
    "shipping",
    "address",
    "before",
    "we",
    "proceed",
    "with",
    "the",
    "replacement",
    "order",
]
_SCOPES = {
    "llm": "openinference.instrumentation.openai",
    "embedding": "openinference.instrumentation.openai",
    "retriever": "openinference.instrumentation.llama_index",
    "chain": "openinference.instrumentation.langchain",
    "agent": "openinference.instrumentation.langchain",
    "tool": "openinference.instrumentation.langchain",
}


def _text(rng: random.Random, low: int, high: int) -> str:
    size = rng.randint(low, high)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def _attributes(record: SpanRecord, rng: random.Random) -> dict[str, Any]:
    kind = record.kind
    attributes: dict[str, Any] = {"openinference.span.kind": kind.upper()}
    system = rng.choice(["You are a helpful support assistant.", "Answer from the documents only."])
    prompt = (record.input or "") + " " + _text(rng, 200, 3600)
    answer = (record.output or "") + " " + _text(rng, 50, 1800)
    if kind == "llm" and record.model:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        attributes.update(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": record.provider or "openai",
                "gen_ai.request.model": record.model,
                "gen_ai.response.model": record.model,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):016x}",
                "gen_ai.response.finish_reasons": [record.finish_reason or "stop"],
                "gen_ai.usage.input_tokens": record.input_tokens or 0,
                "gen_ai.usage.output_tokens": record.output_tokens or 0,
                "llm.model_name": record.model,
                "llm.provider": record.provider or "openai",
                "llm.system": "openai",
                "llm.token_count.prompt": record.input_tokens or 0,
                "llm.token_count.completion": record.output_tokens or 0,
                "llm.token_count.total": (record.input_tokens or 0) + (record.output_tokens or 0),
                "llm.invocation_parameters": json.dumps(
                    {"model": record.model, "temperature": 0.2, "max_tokens": 1024}
                ),
                "input.value": json.dumps({"messages": messages}),
                "input.mime_type": "application/json",
                "output.value": answer[:2000],
                "output.mime_type": "text/plain",
            }
        )
        for index, message in enumerate(messages):
            attributes[f"llm.input_messages.{index}.message.role"] = message["role"]
            if message["role"] == "system":
                attributes[f"llm.input_messages.{index}.message.content"] = message["content"]
        attributes["llm.output_messages.0.message.role"] = "assistant"
    elif kind == "embedding":
        attributes.update(
            {
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": record.model or "text-embedding-3-small",
                "gen_ai.usage.input_tokens": record.input_tokens or 0,
                "embedding.model_name": record.model or "text-embedding-3-small",
                "embedding.embeddings.0.embedding.text": prompt[:1000],
                "input.value": prompt[:1000],
            }
        )
    elif kind == "retriever":
        attributes["input.value"] = prompt[:300]
        for index in range(3):
            attributes[f"retrieval.documents.{index}.document.id"] = f"doc-{rng.randint(1, 5000)}"
            attributes[f"retrieval.documents.{index}.document.score"] = round(rng.random(), 4)
            attributes[f"retrieval.documents.{index}.document.content"] = _text(rng, 200, 500)
    elif kind == "tool":
        attributes.update(
            {
                "gen_ai.operation.name": "execute_tool",
                "tool.name": record.name,
                "tool.parameters": json.dumps({"order_id": rng.randint(1, 99999), "verbose": False}),
                "input.value": prompt[:400],
                "output.value": answer[:800],
            }
        )
    else:
        attributes.update({"input.value": prompt[:2000], "output.value": answer[:1000]})
    attributes["metadata"] = json.dumps({"tier": rng.choice(["free", "pro", "gold"]), "release": "2026.11"})
    if record.tags:
        attributes["tag.tags"] = list(record.tags)
    for key, value in (("user.id", record.user_id), ("session.id", record.session_id)):
        if value:
            attributes[key] = value
    return attributes


def _span(record: SpanRecord, rng: random.Random) -> Span:
    span = Span(
        trace_id=bytes.fromhex(record.trace_id),
        span_id=bytes.fromhex(record.span_id),
        parent_span_id=bytes.fromhex(record.parent_span_id) if record.parent_span_id else b"",
        name=record.name,
        kind=Span.SPAN_KIND_CLIENT if record.kind == "llm" else Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=int(record.start_time.timestamp() * 1e9),
        end_time_unix_nano=int(record.end_time.timestamp() * 1e9),
        status=Status(
            code=Status.STATUS_CODE_ERROR if record.status == "error" else Status.STATUS_CODE_OK,
            message=record.status_message or "",
        ),
    )
    span.attributes.extend(key_values(_attributes(record, rng)))
    return span


def _resource_spans(service: str, environment: str, scope: str, spans: list[Span]) -> ResourceSpans:
    entry = ResourceSpans()
    resource = {
        "service.name": service,
        "service.version": "1.14.2",
        "deployment.environment.name": environment,
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.38.0",
        "host.name": f"{service}-7d9f8b6c5-x2k4q",
        "process.pid": 4711,
    }
    entry.resource.attributes.extend(key_values(resource))
    scope_spans = entry.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.scope.version = "0.1.20"
    scope_spans.spans.extend(spans)
    return entry


def export_bodies(
    *, spans: int, batch: int = 512, seed: int = 7, timing: str = "live", rate: float = 5000
) -> list[tuple[int, bytes]]:
    """`spans` spans of demo traces in end order, as export requests of `batch` spans (one
    ResourceSpans per service and scope within a request, as an SDK sends). `timing`: "live"
    packs the traces into the last seconds as a service producing `rate` spans/s would send them
    (bench/ingest_throughput.py's live timing); "day" keeps them spread over the last day (a
    replay of history: each request touches many minute buckets)."""
    rng = random.Random(seed)
    records: list[SpanRecord] = []
    now = datetime.now(UTC)
    for generated, _ in generate(traces=spans // 3 + 1, seed=seed, end=now, days=1):
        records += generated
        if len(records) >= spans:
            break
    records = records[:spans]
    if timing == "live":
        records = live_timing(records, rate=rate, end=now)
    else:
        records = sorted(records, key=lambda record: record.end_time)
    bodies = []
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        groups: dict[tuple[str, str, str], list[Span]] = {}
        for record in chunk:
            key = (record.service_name, record.environment or "production", _SCOPES.get(record.kind, "app"))
            groups.setdefault(key, []).append(_span(record, rng))
        request = ExportTraceServiceRequest()
        request.resource_spans.extend(_resource_spans(*key, group) for key, group in groups.items())
        bodies.append((len(chunk), request.SerializeToString()))
    return bodies
