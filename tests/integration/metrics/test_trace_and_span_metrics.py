"""`span_count` and `trace_latency_ms`: what Phoenix answers (trace latency percentiles, spans of
each kind), asked in one call over REST and GraphQL, against Python over the generator's records."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from litestar.testing import TestClient

from tests import dataset
from tests.integration.graphql.helpers import data
from tests.integration.metrics.expected import close, in_window, percentile
from tests.integration.metrics.test_metric_query import query

END = dataset.DATASET_END
WEEK = {"from": (END - timedelta(days=7)).isoformat(), "to": END.isoformat()}
PHOENIX_QUESTION: dict[str, Any] = {
    **WEEK,
    "metrics": [
        {"id": "trace_latency_ms", "aggregation": "p50", "alias": "trace_p50"},
        {"id": "trace_latency_ms", "aggregation": "p99", "alias": "trace_p99"},
        {"id": "span_count"},
        {"id": "trace_count"},
        {"id": "input_tokens", "aggregation": "sum"},
        {"id": "cost_usd", "aggregation": "sum"},
    ],
}


def test_spans_of_every_kind_from_raw_spans_and_rollups(client: TestClient) -> None:
    spans = in_window(END - timedelta(days=7), END)
    wanted = Counter(s.kind for s in spans)
    assert len(wanted) > 2  # chains, tools, retrievers ... not only model calls
    for source in ("raw", "rollup"):
        result = query(client, {**WEEK, "metrics": [{"id": "span_count"}], "group_by": ["kind"], "source": source})
        got = {s["group"]["kind"]: s["totals"]["span_count_count"] for s in result["series"]}
        assert got == dict(wanted), source
        assert result["totals"]["span_count_count"] == len(spans)


def test_the_seven_day_question_of_phoenix_is_one_call(client: TestClient) -> None:
    spans = in_window(END - timedelta(days=7), END)
    roots = [s.duration_ms for s in spans if s.parent_span_id is None]
    calls = [s for s in spans if s.kind in ("llm", "embedding")]
    totals = query(client, PHOENIX_QUESTION)["totals"]
    assert close(totals["trace_p50"], percentile(roots, 0.5))
    assert close(totals["trace_p99"], percentile(roots, 0.99))
    assert totals["span_count_count"] == len(spans)
    assert totals["trace_count_count"] == len({s.trace_id for s in spans})
    assert totals["input_tokens_sum"] == sum(s.input_tokens or 0 for s in calls)
    assert close(totals["cost_usd_sum"], sum(s.cost_usd or 0.0 for s in calls))
    graphql = """query($input: MetricQueryInput!) { metricQuery(input: $input) { source totals } }"""
    given = {**{k: v for k, v in PHOENIX_QUESTION.items() if k not in ("from", "to")}, **WEEK}
    given["metrics"] = [{**m, "aggregation": m.get("aggregation", "count").upper()} for m in given["metrics"]]
    found = data(client, graphql, {"input": given})["metricQuery"]
    assert found["source"] == "raw"
    assert found["totals"] == totals


def test_trace_latency_per_day_and_a_top_n_by_span_count(client: TestClient) -> None:
    start = END - timedelta(days=3)
    body = {
        "from": start.isoformat(),
        "to": END.isoformat(),
        "interval": "day",
        "metrics": [{"id": "trace_latency_ms", "aggregation": "p95"}, {"id": "trace_latency_ms", "aggregation": "max"}],
    }
    points = query(client, body)["series"][0]["points"]
    assert len(points) == 3
    for i, point in enumerate(points):
        day = [s for s in in_window(start + timedelta(days=i), start + timedelta(days=i + 1))]
        roots = [s.duration_ms for s in day if s.parent_span_id is None]
        assert close(point["values"]["trace_latency_ms_p95"], percentile(roots, 0.95))
        assert close(point["values"]["trace_latency_ms_max"], max(roots, default=None))
    top = {
        **WEEK,
        "metrics": [{"id": "span_count", "alias": "spans"}],
        "group_by": ["user_id"],
        "order_by": "-spans",
        "limit": 2,
    }
    by_user = Counter(s.user_id for s in in_window(END - timedelta(days=7), END))
    series = query(client, top)["series"]
    assert [s["totals"]["spans"] for s in series] == [count for _, count in by_user.most_common(2)]


def test_trace_latency_is_refused_on_rollups_naming_it(client: TestClient) -> None:
    body = {**WEEK, "metrics": [{"id": "trace_latency_ms", "aggregation": "p50"}], "source": "rollup"}
    response = client.post("/api/v1/metrics/query", json=body)
    assert response.status_code == 400
    assert "trace_latency_ms" in response.text
