"""The OpenAPI document says what the server does: every problem answer is declared as
application/problem+json with the `Problem` schema, no schema rejects every integer, parameters
carry the checks their handlers make, and list answers link to their detail operations.
(tests/fuzz/test_rest_fuzz.py checks the server against it.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from litestar.testing import TestClient

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in ("get", "post"):
            if method in item:
                yield path, item[method]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_every_problem_answer_is_declared_as_problem_json(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    for path, operation in operations(document):
        responses = operation["responses"]
        expected = {"400"}
        if path.startswith("/api/v1/"):
            expected |= {"401", "429", "503"}
            if not path.startswith("/api/v1/auth/"):
                expected.add("403")
        if "requestBody" in operation:
            expected.add("413")
        if "{" in path:
            expected.add("404")
        problems = {status for status, answer in responses.items() if answer.get("content") == PROBLEM}
        assert problems == expected, (path, sorted(responses))
        for status, answer in responses.items():
            if status not in problems:
                assert "application/problem+json" not in answer.get("content", {}), (path, status)
    # Issue 16: the 400 of GET /models was Litestar's default validation schema.
    assert document["paths"]["/api/v1/models"]["get"]["responses"]["400"]["content"] == PROBLEM


def test_no_schema_is_a_one_of_number_and_integer(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    for node in walk(document):
        types = [arm.get("type") for arm in node.get("oneOf", [])]
        assert not ("number" in types and "integer" in types), node


def test_parameters_document_the_checks_of_their_handlers(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]

    def parameter(path: str, name: str) -> dict[str, Any]:
        found = [p for p in paths[path]["get"]["parameters"] if p["name"] == name]
        return found[0]["schema"]

    assert parameter("/api/v1/traces/{trace_id}", "trace_id")["pattern"] == "^[0-9a-f]{32}$"
    assert parameter("/api/v1/logs", "span_id")["pattern"] == "^[0-9a-f]{16}$"
    assert "pattern" in parameter("/api/v1/traces", "service")
    assert "latency_ms" in parameter("/api/v1/metrics/{metric_id}", "metric_id")["enum"]
    assert parameter("/api/v1/metrics/{metric_id}", "status")["enum"] == ["ok", "error", "unset"]
    catalogue = client.get("/api/v1/metrics").json()
    assert {m["id"] for m in catalogue["data"]} == set(parameter("/api/v1/metrics/{metric_id}", "metric_id")["enum"])


def test_list_answers_link_to_their_details(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    links = paths["/api/v1/traces"]["get"]["responses"]["200"]["links"]
    assert links["trace"] == {
        "description": "The first trace of the page.",
        "operationId": "get_trace",
        "parameters": {"trace_id": "$response.body#/data/0/trace_id"},
    }
    model_links = paths["/api/v1/models"]["get"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in model_links.values()} == {"get_model", "get_model_usage"}
    # A link leads to an answer: the first trace of the seeded data, by the id the list gave.
    listed = client.get("/api/v1/traces", params={"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z"})
    trace_id = listed.json()["data"][0]["trace_id"]
    assert client.get(f"/api/v1/traces/{trace_id}").status_code == 200


def test_bodies_are_closed_and_their_filters_follow_the_grammar(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("TraceSearch", "MetricQuery", "MetricSelection", "RefreshRequest"):
        assert schemas[name]["additionalProperties"] is False, name  # the server refuses unknown keys
    search_filter, null = schemas["TraceSearch"]["properties"]["filter"]["oneOf"]
    assert null == {"type": "null"}
    condition, conjunction, disjunction, negation = search_filter["oneOf"]
    fields, attribute_path = condition["properties"]["field"]["anyOf"]
    assert {"model", "span_count", "finish_reason"} <= set(fields["enum"])  # trace and span-level fields
    assert attribute_path["pattern"].startswith("^attributes")
    assert condition["required"] == ["field", "op"] and condition["additionalProperties"] is False
    assert conjunction["properties"]["and"]["minItems"] == disjunction["properties"]["or"]["minItems"] == 1
    assert negation["required"] == ["not"]
    metric_fields = schemas["MetricQuery"]["properties"]["filter"]["oneOf"][0]["oneOf"][0]["properties"]["field"]
    assert "span_count" not in metric_fields["anyOf"][0]["enum"]  # span fields only
    (min_cost,) = [p for p in document["paths"]["/api/v1/traces"]["get"]["parameters"] if p["name"] == "min_cost"]
    assert min_cost["schema"]["minimum"] == 0
