"""Posting GraphQL operations through the real app."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from litestar.testing import TestClient

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
