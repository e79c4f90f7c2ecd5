"""The list filters (`core.listing.ListFilters`) reach both doors without being spelled there: each
field is a query parameter of `GET /spans` (and of its export) and a field of GraphQL's SpanFilter.
The committed OpenAPI document is read: tests/integration/api/test_openapi_document.py keeps it
equal to the code's."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from observatory_api.core.listing import SPAN_ONLY, ListFilters
from observatory_api.graphql.convert import graphql_name
from observatory_api.graphql.inputs import SpanFilter, TraceFilter

# The window is given as `from` and `to`; `q` is `text` in GraphQL.
_REST_NAMES = {"window": ("from", "to")}
_GRAPHQL_NAMES = {"window": ("from_", "to"), "q": ("text",)}


def _fields() -> list[str]:
    return [field.name for field in msgspec.structs.fields(ListFilters)]


def test_every_list_filter_is_a_graphql_input_field() -> None:
    trace_fields = set(TraceFilter.__annotations__)
    span_fields = set(SpanFilter.__annotations__)
    for name in _fields():
        expected = _GRAPHQL_NAMES.get(name, (graphql_name(name),))
        assert set(expected) <= (span_fields if name in SPAN_ONLY else trace_fields), name


def test_every_list_filter_is_a_query_parameter_of_the_span_list_and_export() -> None:
    openapi = Path(__file__).resolve().parents[3] / "schemas" / "openapi.json"
    paths = json.loads(openapi.read_text())["paths"]
    for path in ("/api/v1/spans", "/api/v1/spans/export"):
        parameters = {p["name"] for p in paths[path]["get"]["parameters"]}
        for name in _fields():
            assert set(_REST_NAMES.get(name, (name,))) <= parameters, (path, name)
