"""REST's query parameters and GraphQL's filter inputs check the same identifiers the same way
(`ListFilters.checked`): a control character in any of them is a 400 / INVALID_INPUT naming the
field, and 200 printable characters pass. On both backends, through the real app."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from observatory_api.core.listing import IDENTIFIERS
from tests.integration.graphql.helpers import gql

# GraphQL's input field of each ListFilters identifier.
GRAPHQL_NAMES = {"user_id": "userId", "session_id": "sessionId"}
REASON = "must be 1 to 200 printable characters"


def test_the_identifiers_are_the_seven_both_sides_take() -> None:
    assert IDENTIFIERS == ("service", "model", "provider", "user_id", "session_id", "environment", "tag")


@pytest.mark.parametrize("path", ["/api/v1/traces", "/api/v1/spans"])
@pytest.mark.parametrize("field", IDENTIFIERS)
def test_rest_refuses_a_control_character(client: TestClient, path: str, field: str) -> None:
    response = client.get(path, params={field: "a\x01b"})
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert (error["field"], error["source"]) == (field, "query")
    assert REASON in error["reason"]


@pytest.mark.parametrize("root", ["traces", "spans"])
@pytest.mark.parametrize("field", IDENTIFIERS)
def test_graphql_refuses_a_control_character(client: TestClient, root: str, field: str) -> None:
    name = GRAPHQL_NAMES.get(field, field)
    body = gql(client, f"query($v: String) {{ {root}(filter: {{{name}: $v}}) {{ id }} }}", {"v": "a\x01b"})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["errors"] == [{"field": field, "reason": REASON}]


@pytest.mark.parametrize("field", IDENTIFIERS)
def test_both_accept_two_hundred_printable_characters(client: TestClient, field: str) -> None:
    value = "x" * 200
    assert client.get("/api/v1/traces", params={field: value}).status_code == 200
    name = GRAPHQL_NAMES.get(field, field)
    body = gql(client, f"query($v: String) {{ traces(filter: {{{name}: $v}}) {{ id }} }}", {"v": value})
    assert "errors" not in body, body
