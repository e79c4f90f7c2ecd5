"""End to end: `observatory-api serve --demo` under granian on a free port, queried over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import AUTH, RunningServer, start_server
from tests.e2e.server import free_port as free_port  # re-exported: tests/e2e/test_shutdown.py imports it from here

pytestmark = pytest.mark.e2e
DEMO_TRACES = 120


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`serve --demo` with two workers; the API and the metrics on their own free ports."""
    env = {"LOG_FORMAT": "json", "CORS_ORIGINS": "https://allowed.example"}
    with start_server(tmp_path_factory.mktemp("serve"), workers=2, demo_traces=DEMO_TRACES, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def server(served: RunningServer) -> str:
    return served.base


def test_serves_the_demo_data_over_http(server: str) -> None:
    now = datetime.now(UTC)
    params = {"from": (now - timedelta(days=30, hours=1)).isoformat(), "to": now.isoformat(), "limit": "1000"}
    seen: set[str] = set()
    # Several requests, so that both workers answer at least some of them.
    for _ in range(6):
        response = httpx.get(f"{server}/api/v1/traces", params=params, headers=AUTH, timeout=10)
        assert response.status_code == 200
        body = response.json()
        seen.update(item["trace_id"] for item in body["data"])
    assert len(seen) == DEMO_TRACES
    detail = httpx.get(f"{server}/api/v1/traces/{sorted(seen)[0]}", headers=AUTH, timeout=10)
    assert detail.status_code == 200
    assert detail.json()["spans"]


def test_errors_and_docs_over_http(server: str) -> None:
    bad = httpx.get(f"{server}/api/v1/traces", params={"limit": "0"}, headers=AUTH, timeout=10)
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{server}/schema/openapi.json", timeout=10).json()["openapi"].startswith("3.1")
    assert httpx.get(f"{server}/alive", timeout=10).json() == {"status": "alive"}


# ---------------------------------------------------------------------------------------------------
# Prometheus metrics of the two-worker server, scraped on their own port
# ---------------------------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(
        value for (sample, sample_labels), value in samples.items() if sample == name and wanted <= sample_labels
    )


def access_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "observatory_api.access":
                lines.append(record)
    return lines


def test_metrics_add_up_across_both_workers(served: RunningServer) -> None:
    before = scrape(served.metrics)
    sent: set[str] = set()
    pids: set[object] = set()
    # Requests go to whichever worker accepts the connection: keep sending (new connection each
    # time, bounded) until the access log shows both worker processes answered.
    for attempt in range(300):
        request_id = f"e2e-metrics-{attempt}"
        response = httpx.get(f"{served.base}/api/v1/models", headers={**AUTH, "X-Request-ID": request_id}, timeout=10)
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
        sent.add(request_id)
        if attempt % 5 == 4:
            pids = {line["pid"] for line in access_lines(served.log) if line["request_id"] in sent}
            if len(pids) == 2:
                break
    assert len(pids) == 2, "the requests never reached both workers"

    unknown_trace = "0123456789abcdef0123456789abcdef"
    assert httpx.get(f"{served.base}/api/v1/traces/{unknown_trace}", headers=AUTH, timeout=10).status_code == 404
    # Refused by the authentication middleware before any handler: counted as the 401 it is.
    assert httpx.get(f"{served.base}/api/v1/models", timeout=10).status_code == 401
    assert httpx.get(f"{served.base}/no/such/route/{unknown_trace}", timeout=10).status_code == 404
    assert httpx.delete(f"{served.base}/api/v1/models", timeout=10).status_code == 405
    # The CORS middleware refuses a preflight from an origin it does not allow: a 400 no handler saw.
    preflight = httpx.options(
        f"{served.base}/api/v1/models",
        headers={"Origin": "https://not-allowed.example", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert preflight.status_code == 400
    assert httpx.get(f"{served.base}/alive", timeout=10).status_code == 200  # not counted: a probe

    after = scrape(served.metrics)

    def delta(**labels: str) -> float:
        return total(after, "http_requests_total", **labels) - total(before, "http_requests_total", **labels)

    # Exactly what was sent, although two processes answered: the launcher sums their files.
    assert delta() == len(sent) + 5
    assert delta(route="/api/v1/models", method="GET", status_class="2xx", role="developer") == len(sent)
    assert delta(route="/api/v1/models", method="GET", status_class="4xx", role="anonymous") == 1
    assert delta(route="/api/v1/traces/{trace_id}", status_class="4xx") == 1
    assert delta(route="unmatched", method="GET", status_class="4xx") == 1
    assert delta(route="unmatched", method="DELETE", status_class="4xx") == 1
    # CORS answers before routing, so no route template is known: `unmatched`, with the real 400.
    assert delta(route="unmatched", method="OPTIONS", status_class="4xx") == 1
    rest = total(after, "api_rest_requests_total") - total(before, "api_rest_requests_total")
    assert rest == len(sent) + 4
    durations = total(after, "http_request_duration_seconds_count", route="/api/v1/models", method="GET")
    assert durations - total(before, "http_request_duration_seconds_count", route="/api/v1/models", method="GET") == (
        len(sent) + 1
    )
    # Repository timings, by operation (the model list may come from the response cache after the first).
    assert total(after, "db_query_duration_seconds_count", operation="models.list_models") >= 1
    lookups = "db_query_duration_seconds_count"
    assert (
        total(after, lookups, operation="traces.get_trace") == total(before, lookups, operation="traces.get_trace") + 1
    )

    # Bounded labels: route templates or `unmatched`, never a raw id.
    routes = {dict(labels).get("route") for (name, labels) in after if name == "http_requests_total"}
    assert routes, "no http_requests_total series"
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert not any(unknown_trace in value for (_, labels) in after for _, value in labels)

    assert total(after, "http_requests_in_flight") == 0
    assert total(after, "observatory_api_worker_processes") == 2
    assert total(after, "process_resident_memory_bytes") > 0
    assert total(after, "observatory_api_build_info") == 1
    assert {dict(labels)["state"] for (name, labels) in after if name == "db_pool_connections"} == {
        "checked_out",
        "idle",
        "overflow",
    }


def test_metrics_are_not_on_the_api_port(served: RunningServer) -> None:
    assert httpx.get(f"{served.base}/metrics", timeout=10).status_code == 404
    other = httpx.get(served.metrics.replace("/metrics", "/other"), timeout=10)
    assert other.status_code == 404


def test_every_access_line_is_json_with_the_request_fields(served: RunningServer) -> None:
    response = httpx.get(
        f"{served.base}/api/v1/traces",
        params={"q": "secret prompt words", "limit": "1"},
        headers={**AUTH, "X-Request-ID": "e2e-log-line"},
        timeout=10,
    )
    assert response.status_code == 200
    deadline = time.monotonic() + 5
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline and not lines:
        lines = [line for line in access_lines(served.log) if line["request_id"] == "e2e-log-line"]
        time.sleep(0.05)
    (line,) = lines
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/traces"
    assert line["status"] == 200
    assert line["role"] == "developer"
    assert isinstance(line["duration_ms"], float | int)
    text = served.log.read_text()
    assert "secret prompt words" not in text
    assert AUTH["Authorization"].split()[-1] not in text


def test_serve_demo_prints_the_exporter_setup_and_its_key_ingests(served: RunningServer) -> None:
    import re

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    line = re.search(r"send telemetry with: (.+)", served.log.read_text())
    assert line, served.log.read_text()
    setup = dict(pair.split("=", 1) for pair in line.group(1).split())
    assert setup["OTEL_EXPORTER_OTLP_ENDPOINT"] == served.base.replace("127.0.0.1", "localhost")
    header, _, key = setup["OTEL_EXPORTER_OTLP_HEADERS"].partition("=")
    assert header == "x-api-key" and key.startswith("obs_")
    exporters = [
        OTLPSpanExporter(endpoint=f"{setup['OTEL_EXPORTER_OTLP_ENDPOINT']}/v1/traces", headers={header: key}),
        GrpcSpanExporter(endpoint=f"127.0.0.1:{served.grpc_port}", insecure=True, headers={header: key}),
    ]
    for exporter in exporters:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("tests").start_as_current_span("demo ingest") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
        detail = httpx.get(f"{served.base}/api/v1/traces/{trace_id}", headers=AUTH, timeout=10)
        assert detail.status_code == 200, (type(exporter).__name__, detail.text)
