"""The model catalogue and model usage, checked against the generator's records."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from litestar.testing import TestClient

from observatory_api.models.catalogue_data import STARTER_MODELS
from tests import dataset


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_catalogue_lists_the_starter_models(client: TestClient) -> None:
    body = client.get("/api/v1/models").json()
    assert {m["id"] for m in body["data"]} == {m["id"] for m in STARTER_MODELS}
    anthropic = client.get("/api/v1/models", params={"provider": "anthropic"}).json()["data"]
    assert anthropic and all(m["provider"] == "anthropic" for m in anthropic)


def test_model_detail_has_first_and_last_seen(client: TestClient) -> None:
    used = [s for s in dataset.spans() if s.provider == "openai" and s.model == "gpt-4o-mini"]
    body = client.get("/api/v1/models/openai/gpt-4o-mini").json()
    assert body["pricing"]["input_per_mtok"] > 0
    assert datetime.fromisoformat(body["first_seen"]) == min(s.start_time for s in used)
    assert datetime.fromisoformat(body["last_seen"]) == max(s.start_time for s in used)
    assert client.get("/api/v1/models/openai/no-such-model").status_code == 404


def test_model_usage_totals_percentiles_and_series(client: TestClient, full_range: dict) -> None:
    start = datetime.fromisoformat(full_range["from"])
    end = datetime.fromisoformat(full_range["to"])
    used = [
        s
        for s in dataset.spans()
        if s.provider == "openai" and s.model == "gpt-4o-mini" and start <= s.start_time < end
    ]
    response = client.get("/api/v1/models/openai/gpt-4o-mini/usage", params={**full_range, "interval": "day"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requests"] == len(used)
    assert body["errors"] == sum(s.status == "error" for s in used)
    assert body["input_tokens"] == sum(s.input_tokens or 0 for s in used)
    assert body["cost_usd"] == pytest.approx(sum(s.cost_usd or 0 for s in used))
    durations = [s.duration_ms for s in used]
    for key, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert body["latency_ms"][key] == pytest.approx(percentile(durations, fraction))
    points = body["series"]
    assert sum(p["requests"] for p in points) == len(used)
    times = [datetime.fromisoformat(p["time"]) for p in points]
    assert all(b - a == timedelta(days=1) for a, b in pairwise(times))
    assert times[0] <= start < times[0] + timedelta(days=1)
    per_day = {t: 0 for t in times}
    for span in used:
        day = max(t for t in times if t <= span.start_time)
        per_day[day] += 1
    assert [p["requests"] for p in points] == [per_day[t] for t in times]


def test_model_usage_rejects_bad_intervals_and_ranges(client: TestClient) -> None:
    assert client.get("/api/v1/models/openai/gpt-4o-mini/usage", params={"interval": "fortnight"}).status_code == 400
    too_fine = {"interval": "minute", "from": "2026-10-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}
    response = client.get("/api/v1/models/openai/gpt-4o-mini/usage", params=too_fine)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "interval"


def test_model_usage_breakdowns_and_comparison(client: TestClient, full_range: dict) -> None:
    from observatory_api.models.pricing import ModelPrices, price_usage

    start = datetime.fromisoformat(full_range["from"])
    end = datetime.fromisoformat(full_range["to"])
    used = [
        s
        for s in dataset.spans()
        if s.provider == "anthropic" and s.model == "claude-sonnet-4" and start <= s.start_time < end
    ]
    params = {**full_range, "top_users": 3, "compare_with": "openai/gpt-4o-mini"}
    response = client.get("/api/v1/models/anthropic/claude-sonnet-4/usage", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    by_env: dict = {}
    for s in used:
        by_env[s.environment] = by_env.get(s.environment, 0) + 1
    assert {e["key"]: e["requests"] for e in body["by_environment"]} == by_env
    cost_by_user: dict = {}
    for s in used:
        cost_by_user[s.user_id] = cost_by_user.get(s.user_id, 0.0) + (s.cost_usd or 0.0)
    top = sorted(cost_by_user.items(), key=lambda item: -item[1])[:3]
    assert [u["key"] for u in body["top_users"]] == [u for u, _ in top]
    assert body["top_users"][0]["cost_usd"] == pytest.approx(top[0][1])

    def priced(entry: dict) -> float:
        return price_usage(
            ModelPrices.from_row(entry),
            input_tokens=sum(s.input_tokens or 0 for s in used),
            output_tokens=sum(s.output_tokens or 0 for s in used),
            cache_read_input_tokens=sum(s.cache_read_input_tokens or 0 for s in used),
            cache_creation_input_tokens=sum(s.cache_creation_input_tokens or 0 for s in used),
            reasoning_output_tokens=sum(s.reasoning_output_tokens or 0 for s in used),
        )

    catalogue = {m["id"]: m for m in STARTER_MODELS}
    comparison = body["comparison"]
    assert comparison["model_id"] == "openai/gpt-4o-mini"
    assert comparison["cost_usd"] == pytest.approx(priced(catalogue["openai/gpt-4o-mini"]))
    assert comparison["current_model_list_cost_usd"] == pytest.approx(priced(catalogue["anthropic/claude-sonnet-4"]))
    assert comparison["cost_usd"] < comparison["current_model_list_cost_usd"]
    unknown = client.get("/api/v1/models/anthropic/claude-sonnet-4/usage", params={"compare_with": "x/y"})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "compare_with"
