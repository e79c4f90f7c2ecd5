"""GET /traces, GET /traces/{id}: every filter, sort and page checked against the generator's records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from tests import dataset


def walk(client: TestClient, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of every page, following next_cursor."""
    items: list[dict[str, Any]] = []
    params = dict(params)
    for _ in range(500):
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return items
        params["cursor"] = body["next_cursor"]
    raise AssertionError("pagination did not end")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["trace_id"] for item in items]


def test_walking_every_page_returns_each_trace_once_newest_first(client: TestClient, full_range: dict) -> None:
    items = walk(client, "/api/v1/traces", {**full_range, "limit": 37})
    assert len(ids(items)) == len(set(ids(items))) == dataset.DATASET_TRACES
    starts = [datetime.fromisoformat(i["start_time"]) for i in items]
    assert starts == sorted(starts, reverse=True)


def test_summary_fields_match_the_spans(client: TestClient, full_range: dict) -> None:
    items = walk(client, "/api/v1/traces", {**full_range, "limit": 1000})
    for item in items:
        spans = dataset.spans_by_trace()[item["trace_id"]]
        root = dataset.root_of(spans)
        assert item["span_count"] == len(spans)
        assert item["llm_call_count"] == sum(s.kind == "llm" for s in spans)
        assert item["name"] == root.name
        assert item["user_id"] == root.user_id
        assert item["total_tokens"] == sum(s.total_tokens or 0 for s in spans)
        assert item["cost_usd"] == pytest.approx(sum(s.cost_usd or 0 for s in spans), rel=1e-9, abs=1e-12)
        assert item["status"] == ("error" if any(s.status == "error" for s in spans) else "ok")
        assert set(item["models"]) == dataset.models_of(item["trace_id"])
        first_llm = min((s for s in spans if s.kind == "llm"), key=lambda s: s.start_time)
        assert item["model"] == first_llm.model_id  # the canonical model


@pytest.mark.parametrize("sort", ["start_time", "-duration", "cost", "-cost"])
def test_sorting_walks_in_order(client: TestClient, full_range: dict, sort: str) -> None:
    items = walk(client, "/api/v1/traces", {**full_range, "limit": 150, "sort": sort})
    assert len(items) == dataset.DATASET_TRACES
    key = {"start_time": "start_time", "duration": "duration_ms", "cost": "cost_usd"}[sort.lstrip("-")]
    values = [datetime.fromisoformat(i[key]) if key == "start_time" else i[key] for i in items]
    assert values == sorted(values, reverse=sort.startswith("-"))


def _expected(predicate: Any) -> set[str]:
    return {tid for tid, spans in dataset.spans_by_trace().items() if predicate(tid, spans)}


def test_filter_by_model_matches_any_llm_call(client: TestClient, full_range: dict) -> None:
    model = "gpt-4o-mini"  # folded to its canonical id, openai/gpt-4o-mini, like its snapshots
    expected = _expected(lambda tid, spans: f"openai/{model}" in dataset.models_of(tid))
    assert expected, "the dataset should use the model"
    got = set(ids(walk(client, "/api/v1/traces", {**full_range, "model": model, "limit": 1000})))
    assert got == expected


@pytest.mark.parametrize("field", ["user_id", "session_id", "environment"])
def test_filter_by_root_span_field(client: TestClient, full_range: dict, field: str) -> None:
    sample = getattr(dataset.root_of(next(iter(dataset.spans_by_trace().values()))), field)
    expected = _expected(lambda tid, spans: getattr(dataset.root_of(spans), field) == sample)
    got = set(ids(walk(client, "/api/v1/traces", {**full_range, field: sample, "limit": 1000})))
    assert got == expected


def test_filter_by_status_tag_and_bounds(client: TestClient, full_range: dict) -> None:
    errors = _expected(lambda tid, spans: any(s.status == "error" for s in spans))
    got = set(ids(walk(client, "/api/v1/traces", {**full_range, "status": "error", "limit": 1000})))
    assert got == errors and errors

    tags = [t for spans in dataset.spans_by_trace().values() for t in dataset.root_of(spans).tags]
    tag = max(set(tags), key=tags.count)
    tagged = _expected(lambda tid, spans: tag in dataset.root_of(spans).tags)
    assert set(ids(walk(client, "/api/v1/traces", {**full_range, "tag": tag, "limit": 1000}))) == tagged

    params = {**full_range, "min_duration_ms": 2000, "max_cost": 0.01, "limit": 1000}
    items = walk(client, "/api/v1/traces", params)
    assert items and all(i["duration_ms"] >= 2000 and i["cost_usd"] <= 0.01 for i in items)


def test_text_search_looks_in_prompts_and_completions(client: TestClient, full_range: dict) -> None:
    word = next(s.input for s in dataset.spans() if s.input).split()[0].strip('"{}[]:,').lower()
    assert len(word) >= 3
    expected = _expected(
        lambda tid, spans: any(word in ((s.input or "") + "\n" + (s.output or "")).lower() for s in spans)
    )
    got = set(ids(walk(client, "/api/v1/traces", {**full_range, "q": word, "limit": 1000})))
    assert got == expected


def test_default_window_is_the_last_24_hours(client: TestClient) -> None:
    # The dataset ends in the past, so the default window (ending now) holds none of it.
    response = client.get("/api/v1/traces")
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_trace_detail_nests_children_under_parents(client: TestClient) -> None:
    trace_id, spans = max(dataset.spans_by_trace().items(), key=lambda item: len(item[1]))
    response = client.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 200
    body = response.json()
    seen: list[str] = []

    def visit(node: dict[str, Any], parent: str | None) -> None:
        assert node["parent_span_id"] == parent
        seen.append(node["span_id"])
        for child in node["children"]:
            visit(child, node["span_id"])

    for root in body["spans"]:
        visit(root, None)
    assert sorted(seen) == sorted(s.span_id for s in spans)
    expected_logs = sorted(log.log_id for log in dataset.logs() if log.trace_id == trace_id)
    assert sorted(log["log_id"] for log in body["logs"]) == expected_logs
    llm = next(s for s in spans if s.kind == "llm")
    flat = {n["span_id"]: n for n in _flatten(body["spans"])}
    assert flat[llm.span_id]["input"] == llm.input
    assert flat[llm.span_id]["attributes"] == llm.attributes


def _flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(_flatten(node["children"]))
    return out


def test_unknown_trace_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/traces/" + "0" * 32)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bogus": "1"}, "bogus"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-10T00:00:00Z", "to": "2026-11-09T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-11-09T00:00:00Z"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "weird"}, "status"),
        ({"sort": "name"}, "sort"),
        ({"min_cost": "-1"}, "min_cost"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_input_is_a_400_problem_naming_the_field(client: TestClient, params: dict, field: str) -> None:
    response = client.get("/api/v1/traces", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 400
    assert field in [error["field"] for error in body["errors"]]


def test_malformed_trace_id_is_a_400(client: TestClient) -> None:
    response = client.get("/api/v1/traces/not-hex")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "trace_id"


def test_cursor_cannot_be_replayed_with_other_filters(client: TestClient, full_range: dict) -> None:
    first = client.get("/api/v1/traces", params={**full_range, "limit": 5}).json()
    assert first["has_more"]
    replay = client.get("/api/v1/traces", params={"status": "error", "cursor": first["next_cursor"]})
    assert replay.status_code == 400
    assert replay.json()["errors"][0]["field"] == "cursor"
    other_sort = client.get("/api/v1/traces", params={"sort": "cost", "cursor": first["next_cursor"]})
    assert other_sort.status_code == 400
