"""A GraphQL request too deep or too slow gets a readable answer: 400 problem JSON for a body or
`variables` nested 2,000 levels, 503 problem JSON (as REST) when it runs past the time limit."""

from __future__ import annotations

import json

import pytest
from litestar.testing import AsyncTestClient, TestClient

from observatory_api.app import create_app
from observatory_api.graphql.controller import MAX_JSON_DEPTH
from observatory_api.settings import DatabaseSettings, ServerSettings
from tests.conftest import _pg_url, auth_headers, make_settings, scratch_database, table_locked

SEARCH = "query($f: JSON) { searchTraces(filter: $f) { items { id } } }"


def nested_filter(depth: int) -> str:
    leaf = '{"field": "model", "op": "eq", "value": "x"}'
    return '{"and": [' * depth + leaf + "]}" * depth


def nested_list(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def body(query: str, **members: str) -> str:
    """A JSON request body with `members` given as raw JSON (too deep for `json.dumps` to write)."""
    parts = [f'"query": {json.dumps(query)}'] + [f'"{name}": {raw}' for name, raw in members.items()]
    return "{" + ", ".join(parts) + "}"


BODIES = {
    "filter variable": body(SEARCH, variables=f'{{"f": {nested_filter(2000)}}}'),
    "unused variable": body("{ models { id } }", variables=f'{{"x": {nested_list(2000)}}}'),
    "list variable": body("query($x: [Int]) { models { id } }", variables=f'{{"x": {nested_list(2000)}}}'),
    "extra member": body("{ models { id } }", extensions=nested_list(2000)),
    "whole body": nested_list(2000),
    "just too deep": body("{ models { id } }", variables=f'{{"x": {nested_list(MAX_JSON_DEPTH)}}}'),
}


def assert_too_deep(response: object) -> None:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    problem = response.json()  # type: ignore[attr-defined]
    assert problem["type"].endswith("/invalid-input")
    assert problem["detail"] == f"the JSON nests more than {MAX_JSON_DEPTH} levels deep"


@pytest.mark.parametrize("name", BODIES)
def test_a_deeply_nested_body_is_a_400(client: TestClient, name: str) -> None:
    response = client.post("/graphql", content=BODIES[name], headers={"Content-Type": "application/json"})
    assert_too_deep(response)


def test_deeply_nested_get_variables_are_a_400(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": SEARCH, "variables": f'{{"f": {nested_filter(2000)}}}'})
    assert_too_deep(response)


def test_nesting_within_the_bound_reaches_the_filter_checks(client: TestClient) -> None:
    content = body(SEARCH, variables=f'{{"f": {nested_filter(20)}}}')
    response = client.post("/graphql", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT" and "at most 8 levels" in error["message"]
    content = body("{ models { id } }", variables=f'{{"x": {nested_list(MAX_JSON_DEPTH - 2)}}}')
    response = client.post("/graphql", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["data"]["models"]


async def test_a_query_past_the_time_limit_answers_503_problem_json(pg_template: str) -> None:
    async with scratch_database(pg_template, label="gqltimeout") as name:
        # The statement timeout is far away: only the request time limit can end the wait.
        database = DatabaseSettings(url=_pg_url(name), statement_timeout_ms=60_000)
        settings = make_settings(database, server=ServerSettings(request_timeout_seconds=1))
        headers = auth_headers(settings, "developer")
        async with AsyncTestClient(create_app(settings)) as client:
            async with table_locked(name, "traces", "ACCESS EXCLUSIVE"):  # even reads wait
                slow = await client.post("/graphql", json={"query": "{ traces { id } }"}, headers=headers)
                rest = await client.get("/api/v1/traces", headers=headers)
            after = await client.post("/graphql", json={"query": "{ traces { id } }"}, headers=headers)

    assert slow.status_code == 503
    assert slow.headers["content-type"].startswith("application/problem+json")
    assert slow.headers["retry-after"] == "1"
    problem = slow.json()
    assert problem["type"].endswith("/unavailable")
    assert problem["detail"] == "the request took longer than 1 s and was cancelled"
    assert problem["instance"] == "/graphql" and problem["request_id"]
    # The same answer as REST's, and the next request is served.
    assert rest.status_code == 503 and rest.json()["detail"] == problem["detail"]
    assert after.status_code == 200 and after.json() == {"data": {"traces": []}}
