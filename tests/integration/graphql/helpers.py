"""Posting GraphQL operations through the real app."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings
from tests.conftest import auth_headers, make_settings

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def gql(client: TestClient, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The response body of a POST /graphql that answered 200."""
    response = client.post("/graphql", json={"query": query, "variables": variables or {}}, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def data(client: TestClient, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The `data` of an operation that must succeed."""
    body = gql(client, query, variables, **kwargs)
    assert "errors" not in body, body["errors"]
    return body["data"]


def assert_same(got: Any, expected: Any, path: str = "") -> None:
    """Equal JSON, floats within a relative 1e-9 (sums may add up in another order), times by instant."""
    if isinstance(expected, float) or isinstance(got, float):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), path
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), (path, got, expected)
        for key in expected:
            assert_same(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), (path, got, expected)
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(expected, str) and isinstance(got, str) and TIMESTAMP.match(expected):
        assert datetime.fromisoformat(got) == datetime.fromisoformat(expected), path
    else:
        assert got == expected, (path, got, expected)


def app_client(
    seeded: dict[str, DatabaseSettings], role: str = "developer", backend: str = "sqlite", **sections: Any
) -> TestClient:
    """Another app over the seeded dataset, with its own settings, as `role`."""
    settings = make_settings(seeded[backend], **sections)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.headers.update(auth_headers(settings, role))
    return client


def count(client: TestClient, statements: list[str], query: str, variables: dict[str, Any] | None = None) -> int:
    """How many statements the operation sends."""
    statements.clear()
    data(client, query, variables)
    return len(statements)


def rest_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The body of `GET /models/{id}/usage` in the GraphQL field names (`comparison` only when present)."""
    converted = {
        "modelId": usage["model_id"],
        "from": usage["from"],
        "to": usage["to"],
        "interval": usage["interval"].upper() if usage["interval"] else None,
        "requests": usage["requests"],
        "errors": usage["errors"],
        "errorRate": usage["error_rate"],
        "inputTokens": usage["input_tokens"],
        "outputTokens": usage["output_tokens"],
        "tokenCount": usage["total_tokens"],
        "cost": usage["cost_usd"],
        "latency": usage["latency_ms"],
        "series": usage["series"],
        "byEnvironment": usage["by_environment"],
        "topUsers": usage["top_users"],
    }
    if (comparison := usage.get("comparison")) is not None:
        converted["comparison"] = {
            "modelId": comparison["model_id"],
            "cost": comparison["cost_usd"],
            "currentModelListCost": comparison["current_model_list_cost_usd"],
            "difference": comparison["difference_usd"],
            "ratio": comparison["ratio"],
            "pricing": comparison["pricing"],
        }
    return converted
