"""The capture path itself, end to end: a real instrumentation package (OpenInference's OpenAI
instrumentor, in its own process) calls the fake OpenAI server and exports OTLP/HTTP protobuf
with an ingest key to a real `observatory-api serve` under granian; the REST API then holds
what the package sent, matching the fake server's log."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.instrumentations.fake_openai import FakeOpenAI
from tests.instrumentations.harness import run_instrumentation
from tests.instrumentations.scenario import SESSION_ID, USER_ID
from tests.integration.ingest.conftest import IngestServer, ingest_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


def wait_for_trace(server: IngestServer, trace_id: str, spans: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{server.base}/api/v1/traces/{trace_id}", headers=server.reader, timeout=10)
        if response.status_code == 200 and response.json()["span_count"] >= spans:
            return response.json()  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id} did not arrive whole: {response.status_code} {response.text[:500]}")
        time.sleep(0.2)


def flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for node in nodes for item in (node, *flatten(node["children"]))]


def test_openinference_through_a_real_server(ingest_server: IngestServer) -> None:  # noqa: F811
    fake = FakeOpenAI()
    with fake.running():
        summary = run_instrumentation(
            "openinference",
            openai_base_url=fake.base_url,
            otlp_endpoint=ingest_server.base,
            otlp_headers=ingest_server.otlp_headers(),
            service="live-harness",
        )
    assert summary["outcomes"]["chat"] == "ok"
    assert summary["outcomes"]["rate_limited"].startswith("RateLimitError")
    exchanges = fake.log
    detail = wait_for_trace(ingest_server, summary["trace_id"], spans=len(exchanges) + 1)
    assert detail["service_name"] == "live-harness"
    assert detail["environment"] == "staging"
    assert detail["span_count"] == len(exchanges) + 1  # the root and one span per call, nothing dropped
    calls = sorted(
        (s for s in flatten(detail["spans"]) if s["kind"] in ("llm", "embedding")), key=lambda s: s["start_time"]
    )
    assert len(calls) == len(exchanges)
    for call, exchange in zip(calls, exchanges, strict=True):
        assert call["status"] == ("error" if exchange.status >= 400 else "ok")
        assert call["input_tokens"] == exchange.prompt_tokens
        assert (call["user_id"], call["session_id"]) == (USER_ID, SESSION_ID)
        if exchange.status < 400:
            assert call["model"] == exchange.model_answered
            assert exchange.duration_ms <= call["duration_ms"]
    assert detail["input_tokens"] == sum(e.prompt_tokens or 0 for e in exchanges)
    assert detail["output_tokens"] == sum(e.completion_tokens or 0 for e in exchanges)
