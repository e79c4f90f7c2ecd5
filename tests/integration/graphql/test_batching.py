"""Every relation goes through a per-request DataLoader: a nested query costs a constant number of
SQL statements, whatever the number of parents, and answers what REST answers for each parent."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from observatory_api.models import usage_batch
from tests.integration.graphql.helpers import assert_same, count, data, rest_usage


def test_trace_relations_are_batched(client: TestClient, window: dict, statements: list[str]) -> None:
    query = "query($f: TraceFilter) { traces(filter: $f, limit: 50) { spans { children { id } } logs { body } } }"
    traces = data(client, query, {"f": window})["traces"]
    assert len(traces) == 50
    assert any(t["logs"] for t in traces) and all(t["spans"] for t in traces)
    # The page, the spans of all 50 traces, and their logs (each after their traces' time
    # ranges, which bound the read): not one per trace.
    assert len(statements) == 5, statements
    statements.clear()
    query = "query($f: TraceFilter) { traces(filter: $f, limit: 20) { spans { parent { id } trace { id } } } }"
    assert len(data(client, query, {"f": window})["traces"]) == 20
    assert len(statements) == 4, statements  # the page, the traces' ranges, their spans, the traces


SESSION_TRACES = """query($from: DateTime, $to: DateTime, $n: Int!) {
  sessions(from: $from, to: $to, limit: 200) { id traceCount traces(limit: $n) { id cost } }
}"""


def test_session_traces_are_batched_and_match_rest(client: TestClient, window: dict, statements: list[str]) -> None:
    sessions = data(client, SESSION_TRACES, {**window, "n": 3})["sessions"]
    # The page of sessions, and the first traces of all of them: not one statement per session.
    assert len(statements) == 2, statements
    assert len(sessions) > 20
    assert any(s["traceCount"] > 3 for s in sessions)
    for session in sessions[:25]:
        rest = client.get(f"/api/v1/sessions/{session['id']}", params={"limit": 3}).json()
        assert [t["id"] for t in session["traces"]] == [t["trace_id"] for t in rest["traces"]]
        assert len(session["traces"]) == min(3, session["traceCount"])


def test_session_traces_limit_is_bounded(client: TestClient, window: dict) -> None:
    # 20 sessions: with 200, 200 x 101 traces would be refused first by the row estimate (graphql.max_rows).
    query = SESSION_TRACES.replace("limit: 200", "limit: 20")
    body = client.post("/graphql", json={"query": query, "variables": {**window, "n": 101}}).json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "limit" in body["errors"][0]["message"] and "between 1 and 100" in body["errors"][0]["message"]


def test_model_first_and_last_seen_are_batched_and_match_rest(client: TestClient, statements: list[str]) -> None:
    models = data(client, "{ models { id firstSeen lastSeen } }")["models"]
    assert any(m["firstSeen"] for m in models) and any(m["firstSeen"] is None for m in models)
    for model in models:
        rest = client.get(f"/api/v1/models/{model['id']}").json()
        assert_same(model["firstSeen"], rest["first_seen"])
        assert_same(model["lastSeen"], rest["last_seen"])
    # Where all 30 models were seen: one statement more than the catalogue alone.
    catalogue = count(client, statements, "{ models { id } }")
    assert count(client, statements, "{ models { id firstSeen lastSeen } }") == catalogue + 1
    one = '{ model(id: "openai/gpt-4o") { id firstSeen lastSeen } }'
    assert data(client, one)["model"] == next(m for m in models if m["id"] == "openai/gpt-4o")
    # model(id) reads first and last use with the entry: asking for them costs nothing more.
    assert count(client, statements, one) == count(client, statements, '{ model(id: "openai/gpt-4o") { id } }')


USAGE = """query($provider: String, $from: DateTime, $to: DateTime, $interval: Interval, $top: Int!) {
  models(provider: $provider) {
    id
    usage(from: $from, to: $to, interval: $interval, topUsers: $top) {
      modelId from to interval requests errors errorRate inputTokens outputTokens tokenCount cost
      latency series byEnvironment topUsers
    }
  }
}"""


def test_model_usage_is_batched(client: TestClient, window: dict, statements: list[str]) -> None:
    extra = {}
    for provider in ("openai", None):
        variables = {**window, "provider": provider, "interval": "DAY", "top": 5}
        catalogue = count(
            client,
            statements,
            "query($provider: String) { models(provider: $provider) { id } }",
            {"provider": provider},
        )
        extra[provider] = count(client, statements, USAGE, variables) - catalogue
    # The 9 OpenAI models and all 30 cost the same few statements: one batch, not one per model.
    assert extra["openai"] == extra[None] <= 10, extra


def test_model_usage_matches_rest_for_every_model(client: TestClient, full_range: dict, window: dict) -> None:
    for interval, top in ((None, 10), ("day", 3)):
        variables = {**window, "interval": interval.upper() if interval else None, "top": top}
        models = data(client, USAGE, variables)["models"]
        assert len(models) == 30
        assert sum(1 for m in models if m["usage"]["requests"]) >= 5
        for model in models:
            params = {**full_range, "top_users": top, **({"interval": interval} if interval else {})}
            rest = client.get(f"/api/v1/models/{model['id']}/usage", params=params)
            assert rest.status_code == 200, rest.text
            assert_same(model["usage"], rest_usage(rest.json()), model["id"])


def test_sibling_usage_fields_with_default_ranges_batch_together(client: TestClient, statements: list[str]) -> None:
    # No `from`/`to`: every model's range ends at the same request-wide `now`, so they batch.
    catalogue = count(client, statements, "{ models { id } }")
    assert count(client, statements, "{ models { usage { requests } } }") - catalogue <= 10


def test_model_usage_top_users_stay_exact_when_the_shared_top_n_is_cut(
    client: TestClient, full_range: dict, window: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch asks for the top MAX_TOP_N (model, user) pairs of all models at once; past that
    # bound (1000 in production) a model short of `topUsers` users is asked for alone. A bound of
    # 4 takes that path on the test dataset.
    monkeypatch.setattr(usage_batch, "MAX_TOP_N", 4)
    models = data(client, USAGE, {**window, "interval": None, "top": 3})["models"]
    used = [m for m in models if m["usage"]["requests"]]
    assert len(used) >= 5
    for model in used:
        rest = client.get(f"/api/v1/models/{model['id']}/usage", params={**full_range, "top_users": 3}).json()
        assert_same(model["usage"]["topUsers"], rest["top_users"], model["id"])
