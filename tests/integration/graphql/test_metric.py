"""`metric(id, from, to, aggregation, filter)` answers what `GET /api/v1/metrics/{id}` answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests import dataset
from tests.integration.graphql.helpers import assert_same, data, gql

METRIC = """query($id: String!, $from: DateTime, $to: DateTime, $aggregation: Aggregation, $filter: MetricValueFilter) {
  metric(id: $id, from: $from, to: $to, aggregation: $aggregation, filter: $filter) {
    metric { id description unit aggregations defaultAggregation dimensions rollupAggregations }
    aggregation from to value
    previous { from to value }
    change { absolute relative }
    source
  }
}"""
END = dataset.DATASET_END
WEEK = {"from": (END - timedelta(days=7)).isoformat(), "to": END.isoformat()}


def rest_value(body: dict[str, Any]) -> dict[str, Any]:
    """The REST body in the GraphQL names."""
    definition = body["metric"]
    return {
        "metric": {
            "id": definition["id"],
            "description": definition["description"],
            "unit": definition["unit"],
            "aggregations": [a.upper() for a in definition["aggregations"]],
            "defaultAggregation": definition["default_aggregation"].upper(),
            "dimensions": definition["dimensions"],
            "rollupAggregations": [a.upper() for a in definition["rollup_aggregations"]],
        },
        "aggregation": body["aggregation"].upper(),
        "from": body["from"],
        "to": body["to"],
        "value": body["value"],
        "previous": body["previous"],
        "change": body["change"],
        "source": body["source"],
    }


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (metric id, GraphQL arguments beyond the range, REST parameters beyond the range)
    ("cost_usd", {}, {}),
    ("cost_usd", {"filter": {"environment": "production"}}, {"environment": "production"}),
    ("latency_ms", {"aggregation": "P95"}, {"aggregation": "p95"}),
    ("request_count", {"filter": {"status": "ERROR", "kind": "LLM"}}, {"status": "error", "kind": "llm"}),
    (
        "output_tokens",
        {"aggregation": "AVG", "filter": {"provider": "openai", "model": "gpt-4o", "finishReason": "stop"}},
        {"aggregation": "avg", "provider": "openai", "model": "gpt-4o", "finish_reason": "stop"},
    ),
    ("error_rate", {"filter": {"service": "support-bot"}}, {"service": "support-bot"}),
]


@pytest.mark.parametrize(("metric_id", "arguments", "params"), CASES)
def test_metric_matches_rest(client: TestClient, metric_id: str, arguments: dict, params: dict) -> None:
    got = data(client, METRIC, {"id": metric_id, **WEEK, **arguments})["metric"]
    response = client.get(f"/api/v1/metrics/{metric_id}", params={**WEEK, **params})
    assert response.status_code == 200, response.text
    expected = rest_value(response.json())
    assert_same(got, expected)
    assert got["previous"]["value"] is not None


def test_metric_identity_filters_match_rest(client: TestClient) -> None:
    span = next(s for s in dataset.spans() if s.user_id and s.session_id and s.tags and s.kind == "llm")
    filters = {"userId": span.user_id, "sessionId": span.session_id, "tag": span.tags[0]}
    params = {"user_id": span.user_id, "session_id": span.session_id, "tag": span.tags[0]}
    window = {"from": (END - timedelta(days=30)).isoformat(), "to": END.isoformat()}
    got = data(client, METRIC, {"id": "request_count", **window, "filter": filters})["metric"]
    expected = rest_value(client.get("/api/v1/metrics/request_count", params={**window, **params}).json())
    assert_same(got, expected)
    assert got["value"] >= 1


def test_default_range_is_the_last_day(client: TestClient) -> None:
    got = data(client, 'query { metric(id: "request_count") { from to previous { from to } } }')["metric"]
    assert got["from"] == got["previous"]["to"]


def test_unknown_metric_is_null_and_a_wrong_aggregation_is_invalid_input(client: TestClient) -> None:
    assert data(client, METRIC, {"id": "no_such_metric"})["metric"] is None
    error = gql(client, METRIC, {"id": "request_count", "aggregation": "P50"})["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["errors"][0]["field"] == "aggregation"
    assert "does not apply" in error["extensions"]["errors"][0]["reason"]
    error = gql(client, METRIC, {"id": "request_count", "filter": {"userId": "\x00"}})["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["errors"][0]["field"] == "userId"
