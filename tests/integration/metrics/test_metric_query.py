"""POST /metrics/query and GET /metrics: every metric and aggregation against Python over the
generator's records, group-by, buckets, top-N, filters, invalid input, raw against rollups."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from observatory_api.metrics.catalogue import METRICS, PERCENTILES
from observatory_api.metrics.histogram import ALPHA
from tests import dataset
from tests.integration.metrics.expected import close, in_window, value

URL = "/api/v1/metrics/query"


def query(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def window(full_range: dict[str, str]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(full_range["from"]), datetime.fromisoformat(full_range["to"])


def check(actual: Any, wanted: Any, aggregation: str, *, rollup: bool) -> None:
    if rollup and aggregation in PERCENTILES:
        # The stated bound of the rollup histograms (metrics.histogram).
        assert wanted is not None and actual is not None
        assert abs(actual - wanted) <= ALPHA * wanted + 1e-9, (actual, wanted)
    else:
        assert close(actual, wanted), (actual, wanted)


def test_catalogue_lists_metrics_aggregations_and_dimensions(client: TestClient) -> None:
    body = client.get("/api/v1/metrics").json()
    ids = {m["id"] for m in body["data"]}
    assert ids >= {
        "request_count",
        "trace_count",
        "error_count",
        "error_rate",
        "latency_ms",
        "time_to_first_token_ms",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_input_tokens",
        "reasoning_output_tokens",
        "cost_usd",
        "output_tokens_per_second",
        "unique_users",
        "unique_sessions",
    }
    latency = next(m for m in body["data"] if m["id"] == "latency_ms")
    assert latency["unit"] == "ms" and "p99" in latency["aggregations"] and "model" in latency["dimensions"]
    assert set(body["top_n_dimensions"]) == {"user_id", "session_id", "tag"}
    assert "auto" in body["intervals"]


@pytest.mark.parametrize("metric_id", sorted(METRICS))
def test_every_metric_and_aggregation_matches_python(client: TestClient, full_range: dict, metric_id: str) -> None:
    start, end = window(full_range)
    spans = in_window(start, end)
    metric = METRICS[metric_id]
    selections = [{"id": metric_id, "aggregation": a} for a in metric.aggregations]
    raw = query(client, {**full_range, "metrics": selections, "source": "raw"})
    assert raw["source"] == "raw"
    for aggregation in metric.aggregations:
        check(
            raw["totals"][f"{metric_id}_{aggregation}"], value(metric_id, aggregation, spans), aggregation, rollup=False
        )
    rollup_aggregations = [a for a in metric.aggregations if metric.rollup_answers(a)]
    if not rollup_aggregations:
        return
    body = {**full_range, "metrics": [{"id": metric_id, "aggregation": a} for a in rollup_aggregations]}
    rolled = query(client, {**body, "source": "rollup"})
    assert rolled["source"].startswith("rollup_")
    for aggregation in rollup_aggregations:
        wanted = value(metric_id, aggregation, spans)
        check(rolled["totals"][f"{metric_id}_{aggregation}"], wanted, aggregation, rollup=True)


def test_group_by_model_per_day_with_empty_buckets(client: TestClient) -> None:
    start = dataset.DATASET_END - timedelta(days=10)
    end = dataset.DATASET_END
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "interval": "day",
        "group_by": ["provider", "model"],
        "metrics": [
            {"id": "cost_usd", "aggregation": "sum"},
            {"id": "request_count", "alias": "calls"},
            {"id": "latency_ms", "aggregation": "avg"},
        ],
        "filter": {"field": "provider", "op": "in", "value": ["anthropic", "mistral_ai"]},
    }
    spans = [s for s in in_window(start, end) if s.provider in ("anthropic", "mistral_ai")]
    for source in ("raw", "rollup"):
        result = query(client, {**body, "source": source})
        groups = {(s["group"]["provider"], s["group"]["model"]): s for s in result["series"]}
        assert set(groups) == {(s.provider, s.model_id) for s in spans if s.kind in ("llm", "embedding")}
        for (provider, model), series in groups.items():
            mine = [s for s in spans if s.provider == provider and s.model_id == model]
            assert series["totals"]["calls"] == value("request_count", "count", mine)
            assert close(series["totals"]["cost_usd_sum"], value("cost_usd", "sum", mine))
            points = series["points"]
            assert len(points) == 10
            for point in points:
                day = datetime.fromisoformat(point["time"])
                in_day = [s for s in mine if day <= s.start_time < day + timedelta(days=1)]
                assert point["values"]["calls"] == value("request_count", "count", in_day)
                assert close(point["values"]["cost_usd_sum"], value("cost_usd", "sum", in_day))
                assert close(point["values"]["latency_ms_avg"], value("latency_ms", "avg", in_day), relative=1e-9)
                if not in_day:  # empty buckets: 0 for counts and sums, null for averages
                    assert point["values"] == {"cost_usd_sum": 0.0, "calls": 0, "latency_ms_avg": None}
        assert result["totals"]["calls"] == value("request_count", "count", spans)


def test_top_n_users_and_tags(client: TestClient, full_range: dict) -> None:
    start, end = window(full_range)
    spans = in_window(start, end)
    per_user: dict[str, float] = defaultdict(float)
    for s in spans:
        if s.kind in ("llm", "embedding") and s.user_id:
            per_user[s.user_id] += s.cost_usd or 0.0
    body = {
        **full_range,
        "metrics": [{"id": "cost_usd", "aggregation": "sum", "alias": "cost"}, {"id": "trace_count"}],
        "group_by": ["user_id"],
        "order_by": "-cost",
        "limit": 5,
    }
    result = query(client, body)
    got = [(s["group"]["user_id"], s["totals"]["cost"]) for s in result["series"]]
    wanted = sorted(per_user.items(), key=lambda item: -item[1])[:5]
    assert [u for u, _ in got] == [u for u, _ in wanted]
    assert all(close(c, w) for (_, c), (_, w) in zip(got, wanted, strict=True))
    # Totals cover every user, not only the top 5.
    assert close(
        result["totals"]["cost"],
        sum(per_user.values())
        + sum(s.cost_usd or 0 for s in spans if s.kind in ("llm", "embedding") and not s.user_id),
    )
    assert result["totals"]["trace_count_count"] == len({s.trace_id for s in spans})

    # A span counts under each of its tags; spans without tags form the null group.
    tags: dict[str | None, set[str]] = defaultdict(set)
    for s in spans:
        for tag in s.tags or [None]:
            tags[tag].add(s.trace_id)
    result = query(
        client,
        {
            **full_range,
            "metrics": [{"id": "trace_count"}],
            "group_by": ["tag"],
            "order_by": "-trace_count_count",
            "limit": 3,
            "interval": "week",
        },
    )
    top = sorted(tags.items(), key=lambda item: (-len(item[1]), item[0] is None, item[0] or ""))[:3]
    assert [s["group"]["tag"] for s in result["series"]] == [t for t, _ in top]
    assert [s["totals"]["trace_count_count"] for s in result["series"]] == [len(ids) for _, ids in top]


def test_filters_on_span_fields_and_attributes(client: TestClient, full_range: dict) -> None:
    start, end = window(full_range)
    spans = [
        s
        for s in in_window(start, end)
        if s.environment == "production" and s.status != "error" and (s.input_tokens or 0) > 500
    ]
    body = {
        **full_range,
        "metrics": [{"id": "request_count"}, {"id": "input_tokens", "aggregation": "p90"}],
        "filter": {
            "and": [
                {"field": "environment", "op": "eq", "value": "production"},
                {"not": {"field": "status", "op": "eq", "value": "error"}},
                {"field": "input_tokens", "op": "gt", "value": 500},
            ]
        },
    }
    result = query(client, body)
    assert result["source"] == "raw"  # input_tokens is not a rollup dimension
    assert result["totals"]["request_count_count"] == value("request_count", "count", spans)
    assert close(result["totals"]["input_tokens_p90"], value("input_tokens", "p90", spans))


def test_unaligned_range_reads_raw_edges_around_the_rollup(client: TestClient) -> None:
    start = dataset.DATASET_END - timedelta(days=9, minutes=17, seconds=13.5)
    end = dataset.DATASET_END - timedelta(hours=1, minutes=3, seconds=1)
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "interval": "day",
        "group_by": ["service"],
        "metrics": [
            {"id": "request_count"},
            {"id": "total_tokens", "aggregation": "sum"},
            {"id": "latency_ms", "aggregation": "p90"},
            {"id": "error_rate"},
        ],
    }
    raw = query(client, {**body, "source": "raw"})
    rolled = query(client, body)
    assert rolled["source"] == "rollup_day"  # whole days, then hours, minutes and raw spans at the edges
    assert [s["group"] for s in raw["series"]] == [s["group"] for s in rolled["series"]]
    for raw_series, rolled_series in zip(raw["series"], rolled["series"], strict=True):
        for a, b in zip(raw_series["points"], rolled_series["points"], strict=True):
            assert a["time"] == b["time"]
            assert a["values"]["request_count_count"] == b["values"]["request_count_count"]
            assert a["values"]["total_tokens_sum"] == b["values"]["total_tokens_sum"]
            assert close(b["values"]["error_rate_avg"], a["values"]["error_rate_avg"])
            exact, estimate = a["values"]["latency_ms_p90"], b["values"]["latency_ms_p90"]
            assert (exact is None) == (estimate is None)
            if exact is not None:
                assert abs(estimate - exact) <= ALPHA * exact + 1e-9
    spans = in_window(start, end)
    assert raw["totals"]["request_count_count"] == value("request_count", "count", spans)
    assert close(raw["totals"]["latency_ms_p90"], value("latency_ms", "p90", spans))


def test_auto_interval_and_totals_only(client: TestClient, full_range: dict) -> None:
    result = query(client, {**full_range, "metrics": [{"id": "request_count"}], "interval": "auto"})
    assert result["interval"] == "day"  # 30.5 days: 31 buckets is closest to 50
    assert len(result["series"]) == 1 and result["series"][0]["group"] == {}
    assert len(result["series"][0]["points"]) == 31
    no_interval = query(client, {**full_range, "metrics": [{"id": "request_count"}], "group_by": ["environment"]})
    assert all("points" not in s for s in no_interval["series"])
    assert {s["group"]["environment"] for s in no_interval["series"]} == {"production", "staging", "development"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metrics": [{"id": "no_such_metric"}]}, "metrics[0].id"),
        ({"metrics": [{"id": "request_count", "aggregation": "p99"}]}, "metrics[0].aggregation"),
        ({"metrics": [{"id": "latency_ms", "aggregation": "median"}]}, "metrics[0].aggregation"),
        ({"metrics": [{"id": "latency_ms", "alias": "1bad-alias"}]}, "metrics[0].alias"),
        ({"metrics": [{"id": "latency_ms"}, {"id": "latency_ms"}]}, "metrics[1]"),
        ({"metrics": []}, "metrics"),
        ({"metrics": [{"id": "request_count"}], "group_by": ["colour"]}, "group_by[0]"),
        ({"metrics": [{"id": "request_count"}], "group_by": ["user_id"]}, "group_by"),
        ({"metrics": [{"id": "request_count"}], "interval": "fortnight"}, "interval"),
        ({"metrics": [{"id": "request_count"}], "order_by": "-nothing"}, "order_by"),
        ({"metrics": [{"id": "request_count"}], "limit": 5000}, "limit"),
        (
            {
                "metrics": [{"id": "latency_ms", "aggregation": "p50"}],
                "group_by": ["session_id"],
                "order_by": "latency_ms_p50",
                "limit": 10,
            },
            "order_by",
        ),
        (
            {"metrics": [{"id": "request_count"}], "filter": {"field": "colour", "op": "eq", "value": "x"}},
            "filter.field",
        ),
        ({"metrics": [{"id": "trace_count"}], "source": "rollup"}, "source"),
        ({"metrics": [{"id": "request_count"}], "from": "2026-01-01T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "from"),
        (
            {
                "metrics": [{"id": "request_count"}],
                "interval": "minute",
                "from": "2026-11-01T00:00:00Z",
                "to": "2026-11-20T00:00:00Z",
            },
            "interval",
        ),
    ],
)
def test_invalid_queries_are_400_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post(URL, json=body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["field"] == field, problem


def test_unknown_body_keys_are_refused(client: TestClient) -> None:
    response = client.post(URL, json={"metrics": [{"id": "request_count"}], "sql": "DROP TABLE spans"})
    assert response.status_code == 400


def test_metric_value_with_previous_period(client: TestClient) -> None:
    end = dataset.DATASET_END
    start = end - timedelta(days=7)
    previous_start = start - timedelta(days=7)
    params = {"from": start.isoformat(), "to": end.isoformat(), "environment": "production"}
    response = client.get("/api/v1/metrics/cost_usd", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    production = [s for s in dataset.spans() if s.environment == "production"]
    current = value("cost_usd", "sum", in_window(start, end, production))
    previous = value("cost_usd", "sum", in_window(previous_start, start, production))
    assert body["metric"]["id"] == "cost_usd" and body["aggregation"] == "sum"
    assert close(body["value"], current) and close(body["previous"]["value"], previous)
    assert close(body["change"]["absolute"], current - previous)
    assert close(body["change"]["relative"], (current - previous) / previous, relative=1e-6)
    assert datetime.fromisoformat(body["previous"]["from"]) == previous_start
    p50 = client.get(
        "/api/v1/metrics/latency_ms", params={"from": start.isoformat(), "to": end.isoformat(), "aggregation": "p50"}
    ).json()
    assert p50["aggregation"] == "p50" and p50["value"] > 0
    assert client.get("/api/v1/metrics/no_such_metric").status_code == 404
    bad = client.get("/api/v1/metrics/request_count", params={"aggregation": "p50"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "aggregation"


def test_get_metric_refuses_unknown_status(client: TestClient) -> None:
    response = client.get("/api/v1/metrics/request_count", params={"status": "broken"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "status"


def test_a_viewer_may_not_filter_on_prompt_text(client: TestClient) -> None:
    from observatory_api.settings import DatabaseSettings
    from tests.conftest import auth_headers, make_settings

    viewer = auth_headers(make_settings(DatabaseSettings()), "viewer")
    body = {"metrics": [{"id": "request_count"}], "filter": {"field": "input", "op": "contains", "value": "refund"}}
    assert client.post(URL, json=body).status_code == 200
    response = client.post(URL, json=body, headers=viewer)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "filter.field"


@pytest.mark.parametrize("group_by", [[], ["environment"]])
def test_by_minute_rollups_agree_with_raw(client: TestClient, group_by: list[str]) -> None:
    # Without groups the overall minute rollup (status and kind only) answers; with a group the
    # full minute rollup does. Both must agree with raw spans.
    busiest = max(dataset.spans(), key=lambda s: s.start_time).start_time
    end = busiest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    body = {
        "from": (end - timedelta(hours=6)).isoformat(),
        "to": end.isoformat(),
        "interval": "minute",
        "group_by": group_by,
        "metrics": [
            {"id": "request_count"},
            {"id": "cost_usd", "aggregation": "sum"},
            {"id": "latency_ms", "aggregation": "p95"},
            {"id": "error_rate"},
        ],
    }
    raw = query(client, {**body, "source": "raw"})
    rolled = query(client, body)
    assert rolled["source"] == "rollup_minute"
    assert raw["totals"]["request_count_count"] == rolled["totals"]["request_count_count"] > 0
    for raw_series, rolled_series in zip(raw["series"], rolled["series"], strict=True):
        assert raw_series["group"] == rolled_series["group"]
        for a, b in zip(raw_series["points"], rolled_series["points"], strict=True):
            assert a["values"]["request_count_count"] == b["values"]["request_count_count"]
            assert close(b["values"]["cost_usd_sum"], a["values"]["cost_usd_sum"])
            assert close(b["values"]["error_rate_avg"], a["values"]["error_rate_avg"])
            exact = a["values"]["latency_ms_p95"]
            assert (exact is None) == (b["values"]["latency_ms_p95"] is None)
            if exact is not None:
                assert abs(b["values"]["latency_ms_p95"] - exact) <= ALPHA * exact + 1e-9


def test_a_metric_reading_cost_source_is_answered_by_minute_without_groups(client: TestClient) -> None:
    # unpriced_calls' condition reads cost_source, which the overall minute rollup (status and
    # kind) lacks: the full minute rollup answers, equal to raw spans per minute.
    busiest = max(dataset.spans(), key=lambda s: s.start_time).start_time
    end = busiest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=6)
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "interval": "minute",
        "metrics": [{"id": "unpriced_calls"}],
    }
    raw = query(client, {**body, "source": "raw"})
    rolled = query(client, body)
    assert rolled["source"] == "rollup_minute"
    wanted = value("unpriced_calls", "count", in_window(start, end))
    assert raw["totals"]["unpriced_calls_count"] == rolled["totals"]["unpriced_calls_count"] == wanted
    raw_points = [p["values"]["unpriced_calls_count"] for p in raw["series"][0]["points"]]
    assert raw_points == [p["values"]["unpriced_calls_count"] for p in rolled["series"][0]["points"]]
