"""POST /traces/search: the boolean filter language, against the generator's records."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests import dataset


def search_all(client: TestClient, body: dict[str, Any]) -> set[str]:
    found: list[str] = []
    body = {**body, "limit": 1000}
    for _ in range(100):
        response = client.post("/api/v1/traces/search", json=body)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(item["trace_id"] for item in page["data"])
        if not page["has_more"]:
            assert len(found) == len(set(found))
            return set(found)
        body["cursor"] = page["next_cursor"]
    raise AssertionError("pagination did not end")


def window(full_range: dict[str, str]) -> dict[str, str]:
    return {"from": full_range["from"], "to": full_range["to"]}


def expected(predicate: Any) -> set[str]:
    return {tid for tid, spans in dataset.spans_by_trace().items() if predicate(spans)}


def attribute(span: Any, *path: str) -> Any:
    value: Any = span.attributes
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def nested_attribute_path() -> tuple[str, ...]:
    """A nested attribute the generator writes, and one of its values."""
    for span in dataset.spans():
        for key, value in span.attributes.items():
            if isinstance(value, dict):
                for inner, leaf in value.items():
                    if isinstance(leaf, str):
                        return key, inner, leaf
    raise AssertionError("the generator should write a nested string attribute")


def test_and_or_not_over_trace_and_span_fields(client: TestClient, full_range: dict) -> None:
    key, inner, value = nested_attribute_path()
    body = {
        **window(full_range),
        "filter": {
            "and": [
                {
                    "or": [
                        {"field": "model", "op": "eq", "value": "gpt-4o-mini"},
                        {"field": "provider", "op": "eq", "value": "anthropic"},
                    ]
                },
                {"not": {"field": "status", "op": "eq", "value": "error"}},
                {"field": f"attributes.{key}.{inner}", "op": "eq", "value": value},
            ]
        },
    }

    def match(spans: list) -> bool:
        root_llm = min((s for s in spans if s.kind == "llm"), key=lambda s: s.start_time)
        models = {s.model for s in spans if s.kind == "llm"}
        return (
            ("gpt-4o-mini" in models or root_llm.provider == "anthropic")
            and not any(s.status == "error" for s in spans)
            and any(attribute(s, key, inner) == value for s in spans)
        )

    want = expected(match)
    assert want, "the filter should match part of the dataset"
    assert search_all(client, body) == want


@pytest.mark.parametrize("op", ["gt", "lte"])
def test_numeric_comparisons(client: TestClient, full_range: dict, op: str) -> None:
    body = {**window(full_range), "filter": {"field": "total_tokens", "op": op, "value": 1500}}
    compare = (lambda v: v > 1500) if op == "gt" else (lambda v: v <= 1500)
    assert search_all(client, body) == expected(lambda spans: compare(sum(s.total_tokens or 0 for s in spans)))


def test_in_contains_and_exists(client: TestClient, full_range: dict) -> None:
    body = {**window(full_range), "filter": {"field": "finish_reason", "op": "in", "value": ["length"]}}
    assert search_all(client, body) == expected(lambda spans: any(s.finish_reason == "length" for s in spans))
    key, _, _ = nested_attribute_path()
    body = {**window(full_range), "filter": {"field": f"attributes.{key}", "op": "exists"}}
    assert search_all(client, body) == expected(lambda spans: any(key in s.attributes for s in spans))
    body = {**window(full_range), "filter": {"field": "name", "op": "contains", "value": "AGENT"}}
    assert search_all(client, body) == expected(lambda spans: "agent" in dataset.root_of(spans).name.lower())


@pytest.mark.parametrize(
    ("filter_", "field"),
    [
        ({"field": "nope", "op": "eq", "value": 1}, "filter.field"),
        ({"field": "model", "op": "like", "value": "x"}, "filter.op"),
        ({"field": "duration_ms", "op": "gt", "value": "slow"}, "filter.value"),
        ({"field": "status", "op": "eq", "value": "broken"}, "filter.value"),
        ({"field": "attributes", "op": "eq", "value": 1}, "filter.field"),
        ({"and": []}, "filter.and"),
        ({"and": [{"field": "model", "op": "eq"}]}, "filter.and[0].value"),
        ({"or": [{"field": "model", "op": "eq", "value": "a"}] * 60}, "filter"),
        ({"field": "model", "op": "in", "value": "gpt"}, "filter.value"),
    ],
)
def test_invalid_filters_are_400_naming_the_place(client: TestClient, filter_: dict, field: str) -> None:
    response = client.post("/api/v1/traces/search", json={"filter": filter_})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"].startswith(field)


def test_malformed_bodies_are_400(client: TestClient) -> None:
    assert client.post("/api/v1/traces/search", content=b"{not json").status_code == 400
    assert client.post("/api/v1/traces/search", json={"unknown": 1}).status_code == 400
    assert client.post("/api/v1/traces/search", json={"limit": "ten"}).status_code == 400
