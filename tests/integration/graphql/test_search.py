"""`searchTraces` answers what `POST /api/v1/traces/search` answers, refuses what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests import dataset
from tests.integration.graphql.helpers import app_client, data, gql

SEARCH = """query($filter: JSON, $from: DateTime, $to: DateTime, $sort: TraceSort!, $limit: Int, $after: String) {
  searchTraces(filter: $filter, from: $from, to: $to, sort: $sort, limit: $limit, after: $after) {
    items { id cost tokenCount duration spanCount status model }
    nextCursor hasMore
  }
}"""
SORTS = {"START_TIME_DESC": "-start_time", "COST_DESC": "-cost", "DURATION_ASC": "duration"}


def gql_search(client: TestClient, variables: dict[str, Any]) -> dict[str, Any]:
    return data(client, SEARCH, {"sort": "START_TIME_DESC", **variables})["searchTraces"]


def rest_search(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/traces/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def walk(client: TestClient, variables: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    after = None
    for _ in range(100):
        page = gql_search(client, {**variables, "limit": 150, "after": after})
        ids.extend(item["id"] for item in page["items"])
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            return ids
        after = page["nextCursor"]
    raise AssertionError("pagination did not end")


def rest_walk(client: TestClient, body: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    body = {**body, "limit": 150}
    for _ in range(100):
        page = rest_search(client, body)
        ids.extend(item["trace_id"] for item in page["data"])
        if not page["has_more"]:
            return ids
        body["cursor"] = page["next_cursor"]
    raise AssertionError("pagination did not end")


def nested_attribute() -> tuple[str, str]:
    """`attributes.<key>.<inner>` of a nested string attribute the generator writes, and its value."""
    for span in dataset.spans():
        for key, value in span.attributes.items():
            if isinstance(value, dict):
                for inner, leaf in value.items():
                    if isinstance(leaf, str):
                        return f"attributes.{key}.{inner}", leaf
    raise AssertionError("the generator should write a nested string attribute")


def filters() -> list[dict[str, Any] | None]:
    path, value = nested_attribute()
    return [
        None,
        {
            "and": [
                {
                    "or": [
                        {"field": "model", "op": "eq", "value": "gpt-4o-mini"},
                        {"field": "provider", "op": "eq", "value": "anthropic"},
                    ]
                },
                {"not": {"field": "status", "op": "eq", "value": "error"}},
                {"field": path, "op": "eq", "value": value},
            ]
        },
        {"field": "total_tokens", "op": "gt", "value": 1500},
        {"field": "finish_reason", "op": "in", "value": ["length"]},
        {"field": "attributes.vector_store", "op": "exists"},
        {"field": "name", "op": "contains", "value": "AGENT"},
        {"field": "input", "op": "contains", "value": "the"},
    ]


@pytest.mark.parametrize("index", range(7))
@pytest.mark.parametrize("sort", SORTS)
def test_search_walks_the_same_traces_as_rest(client: TestClient, window: dict, index: int, sort: str) -> None:
    filter_ = filters()[index]
    got = walk(client, {**window, "filter": filter_, "sort": sort})
    expected = rest_walk(client, {**window, "filter": filter_, "sort": SORTS[sort]})
    assert got == expected
    assert len(got) == len(set(got))
    if filter_ is not None:
        assert 0 < len(got) < dataset.DATASET_TRACES, "the filter should match part of the dataset"


def test_pages_and_cursors_are_those_of_rest(client: TestClient, window: dict) -> None:
    filter_ = filters()[1]
    first = gql_search(client, {**window, "filter": filter_, "limit": 5})
    rest = rest_search(client, {**window, "filter": filter_, "limit": 5})
    assert [t["id"] for t in first["items"]] == [t["trace_id"] for t in rest["data"]]
    for got, expected in zip(first["items"], rest["data"], strict=True):
        assert got["cost"] == pytest.approx(expected["cost_usd"])
        assert got["tokenCount"] == expected["total_tokens"]
        assert got["duration"] == pytest.approx(expected["duration_ms"])
        assert (got["spanCount"], got["status"].lower(), got["model"]) == (
            expected["span_count"],
            expected["status"],
            expected["model"],
        )
    assert first["hasMore"] and first["nextCursor"] == rest["next_cursor"]
    # A GraphQL cursor continues the REST search, and the other way round.
    second = gql_search(client, {**window, "filter": filter_, "limit": 5, "after": rest["next_cursor"]})
    rest_second = rest_search(client, {**window, "filter": filter_, "limit": 5, "cursor": first["nextCursor"]})
    assert [t["id"] for t in second["items"]] == [t["trace_id"] for t in rest_second["data"]]
    # A cursor belongs to its filter.
    other = gql(
        client, SEARCH, {**window, "sort": "START_TIME_DESC", "filter": filters()[2], "after": rest["next_cursor"]}
    )
    assert other["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


INVALID: list[tuple[Any, str]] = [
    ({"field": "nope", "op": "eq", "value": 1}, "filter.field"),
    ({"field": "model", "op": "like", "value": "x"}, "filter.op"),
    ({"field": "duration_ms", "op": "gt", "value": "slow"}, "filter.value"),
    ({"field": "status", "op": "eq", "value": "broken"}, "filter.value"),
    ({"field": "attributes", "op": "eq", "value": 1}, "filter.field"),
    ({"and": []}, "filter.and"),
    ({"and": [{"field": "model", "op": "eq"}]}, "filter.and[0].value"),
    ({"or": [{"field": "model", "op": "eq", "value": "a"}] * 60}, "filter"),
    ({"field": "model", "op": "in", "value": "gpt"}, "filter.value"),
    ({"not": {"field": "model"}}, "filter.not.op"),
]


@pytest.mark.parametrize(("filter_", "field"), INVALID)
def test_invalid_filters_are_invalid_input_naming_the_place_as_rest_does(
    client: TestClient, filter_: Any, field: str
) -> None:
    body = gql(client, SEARCH, {"filter": filter_, "sort": "START_TIME_DESC"})
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["errors"][0]["field"].startswith(field)
    rest = client.post("/api/v1/traces/search", json={"filter": filter_})
    assert rest.status_code == 400
    assert rest.json()["errors"][0]["field"] == error["extensions"]["errors"][0]["field"]
    assert rest.json()["detail"] == error["message"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"filter": ["model"]}, "filter"),
        ({"filter": "model = 'gpt-4o'"}, "filter"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": "not-a-cursor"}, "cursor"),
        ({"from": "2026-11-10T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, ""),
    ],
)
def test_invalid_arguments_are_invalid_input(client: TestClient, variables: dict[str, Any], field: str) -> None:
    error = gql(client, SEARCH, {"sort": "START_TIME_DESC", **variables})["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
    assert field in error["message"]


def test_viewers_cannot_search_text_but_search_the_rest(seeded_databases: dict, window: dict, backend: str) -> None:
    on_text = [
        {"field": "input", "op": "contains", "value": "the"},
        {"field": "output", "op": "eq", "value": "x"},
        {"or": [{"field": "model", "op": "eq", "value": "gpt-4o"}, {"not": {"field": "input", "op": "exists"}}]},
    ]
    allowed = filters()[1]
    with app_client(seeded_databases, role="viewer", backend=backend) as viewer:
        for filter_ in on_text:
            body = gql(viewer, SEARCH, {**window, "filter": filter_, "sort": "START_TIME_DESC"})
            error = body["errors"][0]
            assert body["data"] is None and error["extensions"]["code"] == "INVALID_INPUT"
            assert "may not search prompt, completion or error text" in error["message"]
            rest = viewer.post("/api/v1/traces/search", json={**window, "filter": filter_})
            assert rest.status_code == 400 and rest.json()["detail"] == error["message"]
        seen_by_viewer = walk(viewer, {**window, "filter": allowed, "sort": "START_TIME_DESC"})
    with app_client(seeded_databases, role="developer", backend=backend) as developer:
        assert walk(developer, {**window, "filter": allowed, "sort": "START_TIME_DESC"}) == seen_by_viewer
        assert walk(developer, {**window, "filter": on_text[0], "sort": "START_TIME_DESC"})


def test_search_counts_in_the_cost_limit(client: TestClient, window: dict, statements: list[str]) -> None:
    costly = "{ searchTraces(limit: 1000) { items { spans { children { id } } } } }"
    error = gql(client, costly)["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT" and "cost" in error["message"]
    assert statements == [], "a refused query reads nothing"
    # The page's relations are batched as `tracesPage`'s are: the page, the spans, the logs (each
    # after their traces' time ranges, which bound the read).
    query = """query($f: JSON, $from: DateTime, $to: DateTime) {
      searchTraces(filter: $f, from: $from, to: $to, limit: 50) { items { spans { id } logs { id } } }
    }"""
    found = data(client, query, {**window, "f": filters()[2]})["searchTraces"]["items"]
    assert len(found) == 50 and all(t["spans"] for t in found)
    assert len(statements) == 5, statements
