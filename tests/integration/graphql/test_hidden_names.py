"""With introspection off, no error message names a field, argument, input field, enum value or
type that the request did not name itself: graphql-core's suggestions and the names of its
validation and variable errors are hidden."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from observatory_api.graphql.names import HIDDEN
from observatory_api.graphql.schema import build_schema
from observatory_api.settings import GraphQLSettings, QuerySettings
from tests.integration.graphql.helpers import app_client, gql

SCHEMA = build_schema(GraphQLSettings(introspection=True), QuerySettings())._schema
IDENTIFIER = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def schema_names() -> set[str]:
    names: set[str] = set()
    for name, type_ in SCHEMA.type_map.items():
        if name.startswith("__") or name in {"Int", "Float", "String", "Boolean", "ID"}:
            continue
        names.add(name)
        for field_name, field in (getattr(type_, "fields", None) or {}).items():
            names.add(field_name)
            names.update(getattr(field, "args", None) or {})
        names.update(getattr(type_, "values", None) or {})
    return names


NAMES = schema_names()

# (kind, query, variables, a name graphql-core would otherwise reveal)
CASES = [
    ("field", "{ tracs { id } }", None, "traces"),
    ("field's parent type", "{ traces { idd } }", None, "Trace"),
    ("argument", "{ traces(limt: 5) { id } }", None, "limit"),
    ("required argument", "{ trace { name } }", None, "id"),
    ("input field", '{ traces(filter: {modle: "x"}) { id } }', None, "model"),
    ("required input field", "{ metricQuery(input: {}) { totals } }", None, "metrics"),
    ("enum value", "{ traces(filter: {status: EROR}) { id } }", None, "ERROR"),
    ("enum type", "{ traces(sort: NEWEST) { id } }", None, "TraceSort"),
    ("type", "query($f: TraceFiltr) { traces(filter: $f) { id } }", None, "TraceFilter"),
    (
        "enum value in variables",
        "query($f: TraceFilter) { traces(filter: $f) { id } }",
        {"f": {"status": "EROR"}},
        "ERROR",
    ),
    ("input field in variables", "query($f: SpanFilter) { spans(filter: $f) { id } }", {"f": {"kinds": "LLM"}}, "kind"),
    (
        "scalar type in variables",
        "query($f: TraceFilter) { traces(filter: $f) { id } }",
        {"f": {"to": "soon"}},
        "DateTime",
    ),
    (
        "required field in variables",
        "query($i: MetricQueryInput!) { metricQuery(input: $i) { totals } }",
        {"i": {}},
        "metrics",
    ),
    ("selection needed", "{ traces }", None, "Trace"),
    ("fragment on the wrong type", "{ traces { ... on Span { id } } }", None, "Trace"),
]


def revealed(message: str, query: str, variables: Any) -> set[str]:
    """Schema names in `message` that the request did not contain."""
    named = set(IDENTIFIER.findall(query)) | set(IDENTIFIER.findall(repr(variables)))
    return {word for word in IDENTIFIER.findall(message) if word in NAMES and word not in named} - COMMON_WORDS


# Schema names that are also words of graphql-core's sentences ("Expected value of type").
COMMON_WORDS = {"value", "type", "input", "name", "id", "to", "from"}


@pytest.mark.parametrize(("kind", "query", "variables", "secret"), CASES, ids=[c[0] for c in CASES])
def test_errors_name_only_what_the_request_named(
    client: TestClient, kind: str, query: str, variables: Any, secret: str
) -> None:
    errors = gql(client, query, variables)["errors"]
    assert errors, kind
    for error in errors:
        message = error["message"]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert "Did you mean" not in message
        assert secret not in IDENTIFIER.findall(message), message
        assert not revealed(message, query, variables), message
        assert error.get("locations") or "Variable" in message  # still says where


def test_names_the_request_used_stay_and_hidden_ones_say_so(client: TestClient) -> None:
    message = gql(client, "query($f: TraceFilter) { traces(filter: $f) { id } }", {"f": {"modle": "x"}})["errors"][0][
        "message"
    ]
    assert "'TraceFilter'" in message and "'modle'" in message
    message = gql(client, "{ tracs { id } }")["errors"][0]["message"]
    assert message == f"Cannot query field 'tracs' on type {HIDDEN}."


def test_with_introspection_on_the_messages_are_graphql_cores(seeded_databases: dict) -> None:
    with app_client(seeded_databases, graphql=GraphQLSettings(introspection=True)) as client:
        message = gql(client, "{ traces(filter: {status: EROR}) { id } }")["errors"][0]["message"]
        assert "'SpanStatus'" in message and "Did you mean the enum value 'ERROR'?" in message
