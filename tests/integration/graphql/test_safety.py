"""GraphQL safety: limits, introspection, playground, masked errors, auth, roles, rate limits."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from observatory_api.settings import GraphQLSettings, RateLimitSettings, load_settings
from observatory_api.traces.repository import TraceRepository
from tests.integration.graphql.helpers import app_client, data, gql

REPO_CONFIG = Path(__file__).resolve().parents[3] / "api-config.yml"


def test_too_deep_query_is_refused(client: TestClient) -> None:
    inner = "id"
    for _ in range(11):
        inner = f"parent {{ {inner} }}"
    body = gql(client, f'{{ trace(id: "{"0" * 32}") {{ spans {{ {inner} }} }} }}')
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


def test_too_costly_query_is_refused(client: TestClient, statements: list[str]) -> None:
    body = gql(client, "{ traces(limit: 1000) { spans { children { children { id } } } } }")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "cost" in error["message"] and "limit of 1000" in error["message"]
    assert statements == [], "a refused query reads nothing"


def test_the_cost_counts_variables(client: TestClient) -> None:
    query = "query($n: Int) { traces(limit: $n) { spans { children { id } } } }"
    assert "errors" not in gql(client, query, {"n": 10})
    assert "cost" in gql(client, query, {"n": 500})["errors"][0]["message"]


def test_too_many_aliases_and_tokens_are_refused(client: TestClient) -> None:
    aliases = " ".join(f"m{i}: models {{ id }}" for i in range(16))
    assert "aliases" in gql(client, f"{{ {aliases} }}")["errors"][0]["message"]
    fields = " ".join(["id"] * 2100)
    assert "token" in gql(client, f"{{ models {{ {fields} }} }}")["errors"][0]["message"]


def test_introspection_and_suggestions_are_off_by_default(client: TestClient) -> None:
    body = gql(client, "{ __schema { types { name } } }")
    assert body["errors"] and "__schema" not in (body.get("data") or {})
    typo = gql(client, "{ tracs { id } }")["errors"][0]["message"]
    assert "Did you mean" not in typo


def test_introspection_on_when_configured(seeded_databases: dict) -> None:
    with app_client(seeded_databases, graphql=GraphQLSettings(introspection=True)) as client:
        names = {t["name"] for t in data(client, "{ __schema { types { name } } }")["__schema"]["types"]}
        assert {"Trace", "TraceFilter", "Span", "JSON"} <= names
        assert "Did you mean" in gql(client, "{ tracs { id } }")["errors"][0]["message"]


def test_playground_only_when_enabled(client: TestClient, seeded_databases: dict) -> None:
    assert client.get("/graphql/playground").status_code == 404
    with app_client(seeded_databases, graphql=GraphQLSettings(playground=True)) as dev:
        page = dev.get("/graphql/playground", headers={"Authorization": ""})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "graphiql" in page.text.lower() and 'data-endpoint="/graphql"' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "connect-src 'self'" in csp and "http" not in csp
        assert "<script>" not in page.text  # no inline script: every one has a src on the service
        for asset in re.findall(r'(?:src|href)="(/schema/assets/[^"]+)"', page.text):
            assert dev.get(asset).status_code == 200, asset


def test_disabled_graphql_is_not_found(seeded_databases: dict) -> None:
    with app_client(seeded_databases, graphql=GraphQLSettings(enabled=False)) as client:
        assert client.post("/graphql", json={"query": "{ models { id } }"}).status_code == 404


def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret detail: password=hunter2")

    monkeypatch.setattr(TraceRepository, "list_traces", broken)
    with caplog.at_level(logging.ERROR, logger="observatory_api.graphql"):
        response = client.post("/graphql", json={"query": "{ traces { id } }"}, headers={"X-Request-ID": "req-gql-1"})
    body = response.json()
    error = body["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL", "request_id": "req-gql-1"}
    assert "hunter2" not in response.text
    logged = [r for r in caplog.records if r.name == "observatory_api.graphql"]
    assert logged and "req-gql-1" in logged[0].getMessage() and "hunter2" in str(logged[0].exc_info[1])


def test_domain_errors_keep_their_code(client: TestClient) -> None:
    body = gql(client, '{ traces(filter: {from: "2026-01-01T00:00:00Z", to: "2025-01-01T00:00:00Z"}) { id } }')
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "earlier" in body["errors"][0]["message"]


def test_malformed_variables_are_invalid_input_not_masked(client: TestClient) -> None:
    query = "query($f: TraceFilter) { traces(filter: $f) { id } }"
    error = gql(client, query, {"f": {"from": "yesterday"}})["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "from" in error["message"]
    error = gql(client, query, {"f": {"status": "BROKEN"}})["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"


def test_credentials_and_roles_apply(client: TestClient, seeded_databases: dict, window: dict) -> None:
    anonymous = client.post("/graphql", json={"query": "{ models { id } }"}, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    with app_client(seeded_databases, role="ingest") as ingest:
        assert ingest.post("/graphql", json={"query": "{ models { id } }"}).status_code == 403


def test_viewers_get_redacted_content_and_cannot_search_text(
    seeded_databases: dict, window: dict, backend: str
) -> None:
    query = """query($f: TraceFilter, $s: SpanFilter, $l: LogFilter) {
      traces(filter: $f, limit: 20) { id spans { input output contentRedacted } logs { body contentRedacted } }
      spans(filter: $s, limit: 20) { input output contentRedacted children { input } parent { output } }
      logs(filter: $l, limit: 20) { body contentRedacted }
    }"""
    with app_client(seeded_databases, role="viewer", backend=backend) as viewer:
        got = data(viewer, query, {"f": window, "s": window, "l": window})
        spans = [s for t in got["traces"] for s in t["spans"]] + got["spans"]
        logs = [log for t in got["traces"] for log in t["logs"]] + got["logs"]
        assert spans and logs and got["logs"]
        assert all(s["input"] is None and s["output"] is None and s["contentRedacted"] for s in spans)
        assert all(log["body"] is None and log["contentRedacted"] for log in logs)
        related = [c["input"] for s in got["spans"] for c in s["children"]]
        related += [s["parent"]["output"] for s in got["spans"] if s["parent"]]
        assert related and all(value is None for value in related)
        one = data(viewer, "query($id: String!) { trace(id: $id) { spans { input } } }", {"id": got["traces"][0]["id"]})
        assert all(s["input"] is None for s in one["trace"]["spans"])
        refused = gql(viewer, "query($f: TraceFilter) { traces(filter: $f) { id } }", {"f": {**window, "text": "a"}})
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        refused = gql(viewer, '{ logs(filter: {text: "a"}) { id } }')
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        on_text = {"metrics": [{"id": "request_count"}], "filter": {"field": "input", "op": "contains", "value": "a"}}
        refused = gql(viewer, "query($i: MetricQueryInput!) { metricQuery(input: $i) { totals } }", {"i": on_text})
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert refused["errors"][0]["extensions"]["errors"][0]["field"] == "filter.field"
    # A developer reads the same content in full.
    with app_client(seeded_databases, role="developer", backend=backend) as developer:
        full = data(developer, query, {"f": window, "s": window, "l": window})
        assert any(s["input"] for t in full["traces"] for s in t["spans"])
        assert all(log["body"] is not None for log in full["logs"])


def test_rate_limits_are_shared_with_rest(seeded_databases: dict) -> None:
    limits = RateLimitSettings(roles={"developer": 4})
    with app_client(seeded_databases, rate_limit=limits) as client:
        codes = [
            client.get("/api/v1/models").status_code,
            client.post("/graphql", json={"query": "{ models { id } }"}).status_code,
            client.get("/graphql", params={"query": "{ models { id } }"}).status_code,
            client.get("/api/v1/models").status_code,
            client.post("/graphql", json={"query": "{ models { id } }"}).status_code,
            client.get("/api/v1/models").status_code,
        ]
    # One counter per caller: REST and GraphQL requests use up the same budget.
    assert codes == [200, 200, 200, 200, 429, 429]


def test_get_runs_queries_only(client: TestClient) -> None:
    for params in (
        {"query": "mutation { anything }"},
        {"query": "mutation M { anything } query Q { models { id } }", "operationName": "M"},
    ):
        refused = client.get("/graphql", params=params)
        assert refused.status_code == 405, refused.text
        assert refused.headers["allow"] == "POST"
        assert refused.headers["content-type"].startswith("application/problem+json")
    # Over POST a mutation is refused too: the schema has none.
    error = gql(client, "mutation { anything }")["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    missing = client.get("/graphql")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")


def test_graphql_enabled_false_in_the_environment_is_not_found(seeded_databases: dict) -> None:
    loaded = load_settings(REPO_CONFIG, environ={"GRAPHQL_ENABLED": "false", "GRAPHQL_PLAYGROUND": "true"})
    with app_client(seeded_databases, graphql=loaded.graphql) as client:
        assert client.post("/graphql", json={"query": "{ models { id } }"}).status_code == 404
        assert client.get("/graphql", params={"query": "{ models { id } }"}).status_code == 404
        assert client.get("/graphql/playground").status_code == 404
        assert client.get("/api/v1/models").status_code == 200


def test_operations_are_counted(client: TestClient) -> None:
    def value(status: str) -> float:
        labels = {"operation": "query", "status": status}
        return REGISTRY.get_sample_value("api_graphql_queries_total", labels) or 0.0

    ok, error = value("ok"), value("error")
    data(client, "{ models { id } }")
    gql(client, "{ nope }")
    assert value("ok") == ok + 1
    assert value("error") == error + 1
