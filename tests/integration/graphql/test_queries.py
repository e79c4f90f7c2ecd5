"""GraphQL queries answer what the REST endpoints answer for the same question, on both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from observatory_api.graphql.enums import TraceSort
from tests import dataset
from tests.integration.graphql.helpers import data

DOCUMENTED = """
query GetTraces($filter: TraceFilter) {
  traces(filter: $filter, limit: 10) { id timestamp model duration tokenCount cost metadata }
}
"""


def rest_walk(client: TestClient, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = dict(params)
    while True:
        body = client.get(path, params=params).json()
        items.extend(body["data"])
        if not body["has_more"]:
            return items
        params["cursor"] = body["next_cursor"]


def gql_walk(client: TestClient, field: str, args: str, variables: dict[str, Any], select: str = "id") -> list[dict]:
    query = f"""query Walk($filter: {args}, $after: String) {{
      {field}(filter: $filter, limit: 200, after: $after) {{ items {{ {select} }} nextCursor hasMore }}
    }}"""
    items: list[dict[str, Any]] = []
    after = None
    for _ in range(100):
        page = data(client, query, {**variables, "after": after})[field]
        items.extend(page["items"])
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            return items
        after = page["nextCursor"]
    raise AssertionError("pagination did not end")


def test_documented_query_works_as_written(client: TestClient, full_range: dict) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    traces = data(client, DOCUMENTED, {"filter": {**window, "model": "gpt-4o-mini"}})["traces"]
    rest = client.get("/api/v1/traces", params={**full_range, "model": "gpt-4o-mini", "limit": 10}).json()["data"]
    assert [t["id"] for t in traces] == [t["trace_id"] for t in rest]
    for got, expected in zip(traces, rest, strict=True):
        assert got["timestamp"].replace("+00:00", "Z") == expected["start_time"].replace("+00:00", "Z")
        assert got["model"] == expected["model"]
        assert got["duration"] == pytest.approx(expected["duration_ms"])
        assert got["tokenCount"] == expected["total_tokens"]
        assert got["cost"] == pytest.approx(expected["cost_usd"])
        assert got["metadata"]["tags"] == expected["tags"]
        assert got["metadata"]["user"] == expected["user_id"]
        assert got["metadata"]["session"] == expected["session_id"]
        assert got["metadata"]["environment"] == expected["environment"]
        assert got["metadata"]["service"] == expected["service_name"]


def test_cursor_pagination_walks_every_trace_once(client: TestClient, full_range: dict) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    items = gql_walk(client, "tracesPage", "TraceFilter", {"filter": window})
    ids = [t["id"] for t in items]
    assert len(ids) == len(set(ids)) == dataset.DATASET_TRACES
    first = data(client, "query($f: TraceFilter) { traces(filter: $f, limit: 200) { id } }", {"f": window})
    assert [t["id"] for t in first["traces"]] == ids[:200]


FILTERS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"model": "gpt-4o-mini"}, {"model": "gpt-4o-mini"}),
    ({"provider": "anthropic"}, {"provider": "anthropic"}),
    ({"status": "ERROR"}, {"status": "error"}),
    ({"environment": "production"}, {"environment": "production"}),
    ({"minDuration": 2000, "maxDuration": 20000}, {"min_duration_ms": 2000, "max_duration_ms": 20000}),
    ({"minCost": 0.001, "maxCost": 0.05}, {"min_cost": 0.001, "max_cost": 0.05}),
    ({"text": "refund"}, {"q": "refund"}),
]


@pytest.mark.parametrize(("gql_filter", "rest_params"), FILTERS)
def test_each_filter_matches_rest(
    client: TestClient, full_range: dict, gql_filter: dict[str, Any], rest_params: dict[str, Any]
) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    got = [t["id"] for t in gql_walk(client, "tracesPage", "TraceFilter", {"filter": {**window, **gql_filter}})]
    expected = [t["trace_id"] for t in rest_walk(client, "/api/v1/traces", {**full_range, **rest_params, "limit": 500})]
    assert got == expected


@pytest.mark.parametrize("field", ["service_name", "user_id", "session_id", "tags"])
def test_identity_filters_match_rest(client: TestClient, full_range: dict, field: str) -> None:
    sample = client.get("/api/v1/traces", params={**full_range, "limit": 50}).json()["data"]
    value = next(t[field] for t in sample if t[field])
    value = value[0] if field == "tags" else value
    gql_name, rest_name = {
        "service_name": ("service", "service"),
        "user_id": ("userId", "user_id"),
        "session_id": ("sessionId", "session_id"),
        "tags": ("tag", "tag"),
    }[field]
    window = {"from": full_range["from"], "to": full_range["to"]}
    got = [t["id"] for t in gql_walk(client, "tracesPage", "TraceFilter", {"filter": {**window, gql_name: value}})]
    rest = rest_walk(client, "/api/v1/traces", {**full_range, rest_name: value, "limit": 500})
    assert got == [t["trace_id"] for t in rest]
    assert got


TRACE = """query($id: String!) {
  trace(id: $id) {
    id spanCount
    spans { id parentId name input children { id } parent { id } }
    rootSpans { id }
    logs { id body severity }
  }
}"""


def test_trace_with_spans_children_parent_and_logs_matches_rest(client: TestClient, full_range: dict) -> None:
    with_logs = {log.trace_id for log in dataset.logs() if log.trace_id}
    trace_id = next(
        tid for tid in dataset.spans_by_trace() if tid in with_logs and len(dataset.spans_by_trace()[tid]) > 2
    )
    trace = data(client, TRACE, {"id": trace_id})["trace"]
    rest = client.get(f"/api/v1/traces/{trace_id}").json()

    def flatten(nodes: list[dict]) -> list[dict]:
        return [n for node in nodes for n in (node, *flatten(node["children"]))]

    rest_spans = {s["span_id"]: s for s in flatten(rest["spans"])}
    assert {s["id"] for s in trace["spans"]} == set(rest_spans) and len(trace["spans"]) == trace["spanCount"]
    for span in trace["spans"]:
        expected = rest_spans[span["id"]]
        assert span["input"] == expected["input"]
        assert [c["id"] for c in span["children"]] == [c["span_id"] for c in expected["children"]]
        assert (span["parent"] or {}).get("id") == expected["parent_span_id"]
    assert [s["id"] for s in trace["rootSpans"]] == [s["span_id"] for s in rest["spans"]]
    assert [(log["id"], log["body"]) for log in trace["logs"]] == [(e["log_id"], e["body"]) for e in rest["logs"]]
    assert trace["logs"]


def test_unknown_trace_is_null_and_a_malformed_id_is_invalid_input(client: TestClient) -> None:
    assert data(client, TRACE, {"id": "0" * 32})["trace"] is None
    body = client.post("/graphql", json={"query": TRACE, "variables": {"id": "nope"}}).json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "id" in body["errors"][0]["message"]


def test_spans_match_rest(client: TestClient, full_range: dict) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    got = gql_walk(client, "spansPage", "SpanFilter", {"filter": {**window, "kind": "LLM", "model": "gpt-4o"}})
    rest = rest_walk(client, "/api/v1/spans", {**full_range, "kind": "llm", "model": "gpt-4o", "limit": 500})
    assert [s["id"] for s in got] == [s["span_id"] for s in rest]
    assert got


def test_logs_match_rest(client: TestClient, full_range: dict) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    got = gql_walk(client, "logsPage", "LogFilter", {"filter": {**window, "severity": "ERROR"}}, "id body")
    rest = rest_walk(client, "/api/v1/logs", {**full_range, "severity": "ERROR", "limit": 500})
    assert [(e["id"], e["body"]) for e in got] == [(e["log_id"], e["body"]) for e in rest]
    assert got


def test_sessions_and_one_session_match_rest(client: TestClient, full_range: dict) -> None:
    query = """query($from: DateTime, $to: DateTime) {
      sessions(from: $from, to: $to, limit: 1000) { id traceCount cost }
    }"""
    got = data(client, query, {"from": full_range["from"], "to": full_range["to"]})["sessions"]
    rest = client.get("/api/v1/sessions", params={**full_range, "limit": 1000}).json()["data"]
    assert [(s["id"], s["traceCount"]) for s in got] == [(s["session_id"], s["trace_count"]) for s in rest]
    session_id = rest[0]["session_id"]
    one = data(
        client, "query($id: String!) { session(id: $id) { id traceCount traces { id } hasMore } }", {"id": session_id}
    )
    rest_one = client.get(f"/api/v1/sessions/{session_id}").json()
    assert [t["id"] for t in one["session"]["traces"]] == [t["trace_id"] for t in rest_one["traces"]]
    assert data(client, 'query { session(id: "no-such-session") { id } }')["session"] is None


def test_models_model_and_usage_match_rest(client: TestClient, full_range: dict) -> None:
    models = data(client, "{ models { id provider name pricing { inputPerMtok } } }")["models"]
    rest = client.get("/api/v1/models").json()["data"]
    assert [m["id"] for m in models] == [m["id"] for m in rest]
    query = """query($id: String!, $from: DateTime, $to: DateTime) {
      model(id: $id) { id firstSeen usage(from: $from, to: $to, interval: DAY) { requests tokenCount cost series } }
    }"""
    got = data(client, query, {"id": "openai/gpt-4o", **{k: full_range[k] for k in ("from", "to")}})["model"]
    usage = client.get("/api/v1/models/openai/gpt-4o/usage", params={**full_range, "interval": "day"}).json()
    assert got["usage"]["requests"] == usage["requests"] > 0
    assert got["usage"]["tokenCount"] == usage["total_tokens"]
    assert got["usage"]["cost"] == pytest.approx(usage["cost_usd"])
    assert len(got["usage"]["series"]) == len(usage["series"])
    assert data(client, '{ model(id: "nobody/nothing") { id } }')["model"] is None


def test_metric_catalogue_and_query_match_rest(client: TestClient, full_range: dict) -> None:
    catalogue = data(client, "{ metrics { metrics { id aggregations defaultAggregation } intervals } }")["metrics"]
    rest_catalogue = client.get("/api/v1/metrics").json()
    assert [m["id"] for m in catalogue["metrics"]] == [m["id"] for m in rest_catalogue["data"]]
    query = """query($input: MetricQueryInput!) {
      metricQuery(input: $input) { from to interval source totals series { group totals points { time values } } }
    }"""
    given = {
        "metrics": [{"id": "cost_usd", "aggregation": "SUM"}, {"id": "request_count"}],
        "groupBy": ["model"],
        "from": full_range["from"],
        "to": full_range["to"],
        "interval": "DAY",
    }
    got = data(client, query, {"input": given})["metricQuery"]
    body = {
        "metrics": [{"id": "cost_usd", "aggregation": "sum"}, {"id": "request_count"}],
        "group_by": ["model"],
        "from": full_range["from"],
        "to": full_range["to"],
        "interval": "day",
    }
    rest = client.post("/api/v1/metrics/query", json=body).json()
    assert got["totals"] == pytest.approx(rest["totals"])
    assert [s["group"] for s in got["series"]] == [s["group"] for s in rest["series"]]
    assert [len(s["points"]) for s in got["series"]] == [len(s["points"]) for s in rest["series"]]
    assert got["source"] == rest["source"]


def test_queries_work_over_get(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": "{ models { id } }"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["models"]


def test_a_narrower_time_range_matches_rest(client: TestClient) -> None:
    end = dataset.DATASET_END - timedelta(days=3)
    window = {"from": (end - timedelta(days=2, hours=5)).isoformat(), "to": end.isoformat()}
    got = [t["id"] for t in gql_walk(client, "tracesPage", "TraceFilter", {"filter": window})]
    rest = rest_walk(client, "/api/v1/traces", {**window, "limit": 500})
    assert got == [t["trace_id"] for t in rest]
    assert 0 < len(got) < dataset.DATASET_TRACES


@pytest.mark.parametrize("sort", list(TraceSort))
def test_trace_sorts_match_rest(client: TestClient, full_range: dict, sort: TraceSort) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    query = """query Walk($filter: TraceFilter, $after: String, $sort: TraceSort!) {
      tracesPage(filter: $filter, limit: 150, after: $after, sort: $sort) { items { id } nextCursor hasMore }
    }"""
    got: list[str] = []
    after = None
    while True:
        page = data(client, query, {"filter": window, "after": after, "sort": sort.name})["tracesPage"]
        got.extend(t["id"] for t in page["items"])
        if not page["hasMore"]:
            break
        after = page["nextCursor"]
    rest = rest_walk(client, "/api/v1/traces", {**full_range, "sort": sort.value, "limit": 500})
    assert got == [t["trace_id"] for t in rest]


def test_span_trace_filter_and_sort_match_rest(client: TestClient, full_range: dict) -> None:
    trace_id = next(tid for tid, spans in dataset.spans_by_trace().items() if len(spans) > 3)
    window = {"from": full_range["from"], "to": full_range["to"]}
    query = """query($f: SpanFilter) { spans(filter: $f, limit: 100, sort: DURATION_DESC) { id traceId } }"""
    got = data(client, query, {"f": {**window, "traceId": trace_id}})["spans"]
    rest = client.get(
        "/api/v1/spans", params={**full_range, "trace_id": trace_id, "sort": "-duration", "limit": 100}
    ).json()["data"]
    assert [s["id"] for s in got] == [s["span_id"] for s in rest]
    assert {s["traceId"] for s in got} == {trace_id} and len(got) == len(dataset.spans_by_trace()[trace_id])


def test_log_filters_match_rest(client: TestClient, full_range: dict) -> None:
    window = {"from": full_range["from"], "to": full_range["to"]}
    log = next(entry for entry in dataset.logs() if entry.trace_id and entry.span_id)
    word = next(w for w in (log.body or "").split() if len(w) > 4)
    for gql_filter, rest_params in (
        ({"traceId": log.trace_id}, {"trace_id": log.trace_id}),
        ({"spanId": log.span_id}, {"span_id": log.span_id}),
        ({"service": log.service_name}, {"service": log.service_name}),
        ({"text": word}, {"q": word}),
        ({"severity": "WARN", "service": log.service_name}, {"severity": "WARN", "service": log.service_name}),
    ):
        got = gql_walk(client, "logsPage", "LogFilter", {"filter": {**window, **gql_filter}}, "id")
        rest = rest_walk(client, "/api/v1/logs", {**full_range, **rest_params, "limit": 500})
        assert [e["id"] for e in got] == [e["log_id"] for e in rest], gql_filter
        assert got, gql_filter


def test_session_filters_and_sort_match_rest(client: TestClient, full_range: dict) -> None:
    sample = client.get("/api/v1/sessions", params={**full_range, "limit": 50}).json()["data"]
    user = next(s["user_id"] for s in sample if s["user_id"])
    environment = next(s["environment"] for s in sample if s["environment"])
    query = """query($from: DateTime, $to: DateTime, $user: String, $env: String, $sort: SessionSort!) {
      sessions(from: $from, to: $to, userId: $user, environment: $env, sort: $sort, limit: 1000) { id }
    }"""
    window = {"from": full_range["from"], "to": full_range["to"]}
    for variables, params in (
        ({"user": user, "sort": "LAST_SEEN_DESC"}, {"user_id": user}),
        ({"env": environment, "sort": "LAST_SEEN_ASC"}, {"environment": environment, "sort": "last_seen"}),
    ):
        got = data(client, query, {**window, **variables})["sessions"]
        rest = client.get("/api/v1/sessions", params={**full_range, **params, "limit": 1000}).json()["data"]
        assert [s["id"] for s in got] == [s["session_id"] for s in rest]
        assert got
