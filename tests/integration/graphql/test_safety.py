"""GraphQL safety: batching, limits, introspection, playground, masked errors, auth, roles, rate limits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import event

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, GraphQLSettings, RateLimitSettings
from observatory_api.traces.repository import TraceRepository
from tests.conftest import auth_headers, make_settings
from tests.integration.graphql.helpers import data, gql


@pytest.fixture
def window(full_range: dict) -> dict[str, Any]:
    return {"from": full_range["from"], "to": full_range["to"]}


def app_client(seeded: dict[str, DatabaseSettings], role: str = "developer", **sections: Any) -> TestClient:
    settings = make_settings(seeded["sqlite"], **sections)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.headers.update(auth_headers(settings, role))
    return client


@pytest.fixture
def statements(client: TestClient) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = client.app.state.read_engine.sync_engine

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_nested_relations_are_batched(client: TestClient, window: dict, statements: list[str]) -> None:
    query = "query($f: TraceFilter) { traces(filter: $f, limit: 50) { spans { children { id } } logs { body } } }"
    traces = data(client, query, {"f": window})["traces"]
    assert len(traces) == 50
    assert any(t["logs"] for t in traces) and all(t["spans"] for t in traces)
    # The page, the spans of all 50 traces, and their logs: not one per trace.
    assert len(statements) == 3, statements
    statements.clear()
    query = "query($f: TraceFilter) { traces(filter: $f, limit: 20) { spans { parent { id } trace { id } } } }"
    assert len(data(client, query, {"f": window})["traces"]) == 20
    assert len(statements) == 3, statements


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
        assert "graphiql" in page.text.lower() and 'new URL("/graphql"' in page.text
        csp = page.headers["content-security-policy"]
        assert "https://unpkg.com" in csp and "'unsafe-inline'" in csp and "connect-src 'self'" in csp


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


def test_viewers_get_redacted_content_and_cannot_search_text(seeded_databases: dict, window: dict) -> None:
    query = """query($f: TraceFilter, $s: SpanFilter) {
      traces(filter: $f, limit: 20) { spans { input output contentRedacted } logs { body contentRedacted } }
      spans(filter: $s, limit: 20) { input output contentRedacted }
    }"""
    with app_client(seeded_databases, role="viewer") as viewer:
        got = data(viewer, query, {"f": window, "s": window})
        spans = [s for t in got["traces"] for s in t["spans"]] + got["spans"]
        logs = [log for t in got["traces"] for log in t["logs"]]
        assert spans and logs
        assert all(s["input"] is None and s["output"] is None and s["contentRedacted"] for s in spans)
        assert all(log["body"] is None and log["contentRedacted"] for log in logs)
        refused = gql(viewer, "query($f: TraceFilter) { traces(filter: $f) { id } }", {"f": {**window, "text": "a"}})
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        refused = gql(viewer, '{ logs(filter: {text: "a"}) { id } }')
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


def test_rate_limits_apply(seeded_databases: dict) -> None:
    limits = RateLimitSettings(roles={"developer": 3})
    with app_client(seeded_databases, rate_limit=limits) as client:
        codes = [client.post("/graphql", json={"query": "{ models { id } }"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_operations_are_counted(client: TestClient) -> None:
    def value(status: str) -> float:
        labels = {"operation": "query", "status": status}
        return REGISTRY.get_sample_value("api_graphql_queries_total", labels) or 0.0

    ok, error = value("ok"), value("error")
    data(client, "{ models { id } }")
    gql(client, "{ nope }")
    assert value("ok") == ok + 1
    assert value("error") == error + 1
