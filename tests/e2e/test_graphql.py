"""End to end: the documented GraphQL query against `observatory-api serve --demo` under granian,
answered as REST answers the same question."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.server import AUTH, start_server

pytestmark = pytest.mark.e2e
GET_TRACES = """
query GetTraces($filter: TraceFilter) {
  traces(filter: $filter, limit: 10) { id timestamp model duration tokenCount cost metadata }
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`serve --demo` with one worker on a free port (its own SQLite database in a temporary folder)."""
    with start_server(tmp_path_factory.mktemp("serve_graphql"), workers=1, demo_traces=80) as running:
        yield running.base


def post_graphql(server: str, variables: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server}/graphql", json={"query": GET_TRACES, "variables": variables}, headers=headers)


def test_the_documented_query_answers_as_rest_does(server: str) -> None:
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(days=30, hours=1)).isoformat(), "to": now.isoformat()}
    rest_all = httpx.get(f"{server}/api/v1/traces", params={**window, "limit": "10"}, headers=AUTH, timeout=10)
    assert rest_all.status_code == 200
    model = next(t["model"] for t in rest_all.json()["data"] if t["model"])
    for extra in ({}, {"model": model}):
        response = post_graphql(server, {"filter": {**window, **extra}}, AUTH)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert "errors" not in body, body
        rest = httpx.get(f"{server}/api/v1/traces", params={**window, **extra, "limit": "10"}, headers=AUTH)
        expected = rest.json()["data"]
        traces = body["data"]["traces"]
        # The demo data follows the clock: a model may have fewer than 10 traces in the window.
        assert len(traces) == len(expected) == (10 if not extra else len(expected)) > 0
        for got, want in zip(traces, expected, strict=True):
            assert got["id"] == want["trace_id"]
            assert datetime.fromisoformat(got["timestamp"]) == datetime.fromisoformat(want["start_time"])
            assert got["model"] == want["model"]
            assert got["duration"] == pytest.approx(want["duration_ms"])
            assert got["tokenCount"] == want["total_tokens"]
            assert got["cost"] == pytest.approx(want["cost_usd"])
            assert got["metadata"]["service"] == want["service_name"]
            assert got["metadata"]["tags"] == want["tags"]
            assert got["metadata"]["models"] == want["models"]
            if extra:
                assert model in got["metadata"]["models"]


def test_graphql_needs_credentials_over_http(server: str) -> None:
    response = post_graphql(server, {}, {})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
