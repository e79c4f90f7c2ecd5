"""Posting GraphQL operations through the real app."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient


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
