"""`format=otlp-json`: OTLP/JSON export requests, one per line, that ingest takes back as the same rows."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, FeatureSettings, RateLimitSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.api.test_export import export

ROLES = {"admin": 1_000_000, "developer": 1_000_000, "viewer": 1_000_000, "ingest": 1_000_000}


def otlp_lines(client: TestClient[Any], path: str, params: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    response = client.get(path, params={**params, "format": "otlp-json"}, **kwargs)
    assert response.status_code == 200, response.text
    assert 'filename="' in response.headers["content-disposition"]
    return [json.loads(line) for line in response.text.splitlines()]


def reimported(database: DatabaseSettings, path: str, lines: list[dict[str, Any]]) -> TestClient[Any]:
    """A client of an app with ingest on over `database`, after posting `lines` to `path`."""
    settings = make_settings(database, features=FeatureSettings(ingest=True), rate_limit=RateLimitSettings(roles=ROLES))
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    for line in lines:
        answer = client.post(
            path,
            content=json.dumps(line),
            headers={**auth_headers(settings, "ingest"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        assert "partialSuccess" not in answer.json() or not answer.json()["partialSuccess"], answer.text
    client.headers.update(auth_headers(settings, "developer"))
    return client


def test_otlp_span_export_is_grouped_requests_that_reimport_as_the_same_spans(
    client: TestClient[Any], full_range: dict[str, str], empty_database: DatabaseSettings
) -> None:
    lines = otlp_lines(client, "/api/v1/spans/export", full_range)
    spans = [span for line in lines for r in line["resourceSpans"] for s in r["scopeSpans"] for span in s["spans"]]
    listed = export(client, "/api/v1/spans/export", full_range)
    assert len(lines) == -(-len(listed) // 1000)  # a request per 1,000-span page
    assert [(s["traceId"], s["spanId"]) for s in spans] != []
    assert sorted((s["traceId"], s["spanId"]) for s in spans) == sorted((s["trace_id"], s["span_id"]) for s in listed)
    # Grouped: each resource appears once per request.
    for line in lines:
        names = [json.dumps(r["resource"], sort_keys=True) for r in line["resourceSpans"]]
        assert len(names) == len(set(names))

    again = reimported(empty_database, "/v1/traces", lines)
    try:
        # Every column back, cost_source aside: a re-imported cost is one the instrumentation sent.
        def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in row.items() if k != "cost_source"} for row in rows]

        assert strip(export(again, "/api/v1/spans/export", full_range)) == strip(listed)
        assert otlp_lines(again, "/api/v1/spans/export", full_range) == lines
    finally:
        again.__exit__(None, None, None)


def test_otlp_trace_export_is_the_spans_of_the_traces(client: TestClient[Any], full_range: dict[str, str]) -> None:
    params = {**full_range, "model": "gpt-4o-mini"}
    traces = export(client, "/api/v1/traces/export", params)
    lines = otlp_lines(client, "/api/v1/traces/export", params)
    ids = {s["traceId"] for line in lines for r in line["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]}
    assert traces and ids == {t["trace_id"] for t in traces}
    count = sum(len(sc["spans"]) for line in lines for r in line["resourceSpans"] for sc in r["scopeSpans"])
    assert count == sum(t["span_count"] for t in traces)


def test_otlp_log_export_reimports_as_the_same_logs(
    client: TestClient[Any], full_range: dict[str, str], empty_database: DatabaseSettings
) -> None:
    lines = otlp_lines(client, "/api/v1/logs/export", full_range)
    listed = export(client, "/api/v1/logs/export", full_range)
    records = [rec for line in lines for r in line["resourceLogs"] for s in r["scopeLogs"] for rec in s["logRecords"]]
    assert len(records) == len(listed) > 0
    again = reimported(empty_database, "/v1/logs", lines)
    try:
        # log_id is derived from the content on ingest (the demo's are not): every other column back.
        def content(rows: list[dict[str, Any]]) -> list[str]:
            return sorted(json.dumps({k: v for k, v in row.items() if k != "log_id"}, sort_keys=True) for row in rows)

        assert content(export(again, "/api/v1/logs/export", full_range)) == content(listed)
    finally:
        again.__exit__(None, None, None)


def test_a_viewers_otlp_export_carries_no_content(
    client: TestClient[Any], backend: str, seeded_databases: dict[str, DatabaseSettings], full_range: dict[str, str]
) -> None:
    viewer = auth_headers(make_settings(seeded_databases[backend]), "viewer")
    lines = otlp_lines(client, "/api/v1/spans/export", {**full_range, "kind": "llm"}, headers=viewer)
    keys = {
        a["key"]
        for line in lines
        for r in line["resourceSpans"]
        for sc in r["scopeSpans"]
        for s in sc["spans"]
        for a in s["attributes"]
    }
    assert lines and "gen_ai.response.model" in keys
    assert not keys & {"gen_ai.input.messages", "gen_ai.output.messages"}
    developer = otlp_lines(client, "/api/v1/spans/export", {**full_range, "kind": "llm"})
    assert any(
        a["key"] == "gen_ai.input.messages"
        for line in developer
        for r in line["resourceSpans"]
        for sc in r["scopeSpans"]
        for s in sc["spans"]
        for a in s["attributes"]
    )
