"""Bad strings and numbers are 400 problems naming the field and the reason, never 500s: NUL
characters, timestamps out of range, malformed attribute paths, numbers beyond a column's type,
forged cursors. On both backends, through the real app."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import msgspec
import pytest
from httpx import Response
from litestar.testing import TestClient

from observatory_api.core.pagination import fingerprint
from tests import dataset

SEARCH = "/api/v1/traces/search"
METRICS = "/api/v1/metrics/query"
NUL = "a\x00b"


def assert_problem(response: Response, field: str, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    (error,) = response.json()["errors"]
    assert error["field"] == field, error
    assert reason in error["reason"], error


def condition(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"filter": {"field": field, "op": op, "value": value}}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/traces", {"q": NUL}, "q"),
        ("/api/v1/spans", {"q": NUL}, "q"),
        ("/api/v1/logs", {"q": NUL}, "q"),
        ("/api/v1/logs", {"service": NUL}, "service"),
        ("/api/v1/traces", {"model": NUL}, "model"),
        ("/api/v1/traces", {"environment": NUL}, "environment"),
        ("/api/v1/sessions", {"environment": NUL}, "environment"),
        ("/api/v1/models", {"provider": NUL}, "provider"),
        ("/api/v1/metrics/cost_usd", {"model": NUL}, "model"),
        ("/api/v1/models/openai/gpt-4o/usage", {"compare_with": f"openai/{NUL}"}, "compare_with"),
        ("/api/v1/traces", {"cursor": NUL}, "cursor"),
        ("/api/v1/sessions/a%00b", {}, "session_id"),
        ("/api/v1/models/open%00ai/gpt-4o", {}, "provider"),
        ("/api/v1/models/openai/gpt%004o/usage", {}, "name"),
    ],
)
def test_a_nul_character_in_a_parameter_is_400(client: TestClient, path: str, params: dict, field: str) -> None:
    assert_problem(client.get(path, params=params), field, "must not contain NUL characters")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (condition("name", "eq", NUL), "filter.value"),
        (condition("name", "contains", NUL), "filter.value"),
        (condition("status_message", "in", ["ok", NUL]), "filter.value"),
        (condition("tag", "eq", NUL), "filter.value"),
        (condition("attributes.customer", "eq", NUL), "filter.value"),
        (condition("input", "contains", NUL), "filter.value"),
    ],
)
def test_a_nul_character_in_a_search_value_is_400(client: TestClient, full_range: dict, body: dict, field: str) -> None:
    assert_problem(client.post(SEARCH, json={**full_range, **body}), field, "must not contain NUL characters")
    metrics = {**full_range, "metrics": [{"id": "request_count"}], **body}
    assert_problem(client.post(METRICS, json=metrics), field, "must not contain NUL characters")


OUT_OF_RANGE = "must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z"


@pytest.mark.parametrize("path", ["/api/v1/traces", "/api/v1/spans", "/api/v1/logs", "/api/v1/sessions"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "0001-01-01T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"}, "to"),
        ({"from": "1969-12-31T00:00:00Z", "to": "1970-01-02T00:00:00Z"}, "from"),
        ({"to": "9999-12-31T23:00:00-02:00"}, "to"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
    ],
)
def test_timestamps_out_of_range_are_400(client: TestClient, path: str, params: dict, field: str) -> None:
    assert_problem(client.get(path, params=params), field, OUT_OF_RANGE)


def test_timestamps_out_of_range_in_bodies_and_metrics_are_400(client: TestClient) -> None:
    year_one = {"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"}
    assert_problem(client.post(SEARCH, json=year_one), "to", OUT_OF_RANGE)
    assert_problem(client.post(METRICS, json={**year_one, "metrics": [{"id": "request_count"}]}), "to", OUT_OF_RANGE)
    assert (
        client.post(METRICS, json={**year_one, "metrics": [{"id": "request_count"}]}).json()["errors"][0]["source"]
        == "body"
    )
    assert_problem(client.get("/api/v1/metrics/cost_usd", params={"to": "0001-01-01T00:00:00Z"}), "to", OUT_OF_RANGE)
    usage = client.get("/api/v1/models/openai/gpt-4o/usage", params={"to": "0001-01-01T00:00:00Z"})
    assert_problem(usage, "to", OUT_OF_RANGE)
    year_one_condition = condition("start_time", "gt", "0001-01-01T00:00:00Z")
    assert_problem(client.post(SEARCH, json=year_one_condition), "filter.value", OUT_OF_RANGE)


def test_the_first_day_of_the_epoch_is_in_range(client: TestClient) -> None:
    first_day = {"from": "1970-01-01T00:00:00Z", "to": "1970-01-02T00:00:00Z"}
    response = client.get("/api/v1/traces", params=first_day)
    assert response.status_code == 200 and response.json()["data"] == []
    # The previous period would start before anything can be stored: it is absent.
    value = client.get("/api/v1/metrics/request_count", params=first_day)
    assert value.status_code == 200, value.text
    body = value.json()
    assert body["value"] == 0 and body["previous"]["value"] is None and body["change"]["absolute"] is None
    second_day = {"from": "1970-01-02T00:00:00Z", "to": "1970-01-04T00:00:00Z"}
    clipped = client.get("/api/v1/metrics/request_count", params=second_day).json()
    assert clipped["previous"] == {"from": "1970-01-01T00:00:00Z", "to": "1970-01-02T00:00:00Z", "value": 0}


def trace_ids(client: TestClient, body: dict[str, Any]) -> set[str]:
    response = client.post(SEARCH, json={**body, "limit": 1000})
    assert response.status_code == 200, response.text
    page = response.json()
    assert not page["has_more"]
    return {item["trace_id"] for item in page["data"]}


def test_numbers_beyond_a_column_compare_as_numbers(client: TestClient, full_range: dict) -> None:
    start, end = datetime.fromisoformat(full_range["from"]), datetime.fromisoformat(full_range["to"])
    in_range = {
        trace_id
        for trace_id, spans in dataset.spans_by_trace().items()
        if start <= min(s.start_time for s in spans) < end
    }
    # total_tokens and span_count are 32-bit integers on PostgreSQL: 2**40 could not be bound.
    assert trace_ids(client, {**full_range, **condition("total_tokens", "gt", 2**40)}) == set()
    assert trace_ids(client, {**full_range, **condition("total_tokens", "lt", 2**40)}) == in_range
    assert trace_ids(client, {**full_range, **condition("span_count", "lte", -(2**70))}) == set()
    two_or_more = trace_ids(client, {**full_range, **condition("span_count", "gte", 2)})
    assert trace_ids(client, {**full_range, **condition("span_count", "gt", 1.5)}) == two_or_more
    assert trace_ids(client, {**full_range, **condition("span_count", "eq", 1.5)}) == set()
    assert trace_ids(client, {**full_range, **condition("span_count", "in", [2**63, 1.5])}) == set()
    # SQLite binds 64-bit integers only.
    assert trace_ids(client, {**full_range, **condition("attributes.customer", "gt", 2**70)}) == set()
    assert trace_ids(client, {**full_range, **condition("duration_ms", "gt", 2**70)}) == set()


@pytest.mark.parametrize("value", [10**400, -(10**309)])
def test_numbers_no_double_holds_are_400(client: TestClient, full_range: dict, value: int) -> None:
    for field in ("duration_ms", "total_tokens", "attributes.customer"):
        response = client.post(SEARCH, json={**full_range, **condition(field, "gt", value)})
        assert_problem(response, "filter.value", "must be a number between -1e+308 and 1e+308")


def forged(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "change",
    [
        {"window_from": "0001-01-01T00:00:00", "window_to": "0001-01-02T00:00:00"},
        {"window_from": "2026-11-02T00:00:00Z", "window_to": "2026-11-01T00:00:00Z"},
        {"key": ["2026-11-01T00:00:00Z", NUL]},
        {"key": ["0001-01-01T00:00:00", "0" * 32]},
        {"key": [2**80, "0" * 32]},
    ],
)
def test_forged_cursors_are_400(client: TestClient, change: dict[str, Any]) -> None:
    filters = {name: None for name in ("service", "model", "provider", "status", "user_id", "session_id")}
    filters |= {name: None for name in ("environment", "tag", "min_duration_ms", "max_duration_ms", "min_cost")}
    filters |= {"max_cost": None, "q": None, "kind": None, "trace_id": None}
    cursor = {
        "sort": "-start_time",
        "key": ["2026-11-01T00:00:00Z", "0" * 32],
        "window_from": "2026-11-01T00:00:00Z",
        "window_to": "2026-11-02T00:00:00Z",
        "fingerprint": fingerprint(filters),
        **change,
    }
    assert_problem(client.get("/api/v1/traces", params={"cursor": forged(cursor)}), "cursor", "is not a cursor")


def test_parameter_errors_name_their_location(client: TestClient) -> None:
    response = client.get("/api/v1/traces", params={"limit": "ten"})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "limit", "reason": "Expected `int | null`, got `str`", "source": "query"}
    ]


@pytest.mark.parametrize(
    "path", ["/api/v1/traces", "/api/v1/logs", "/api/v1/sessions", "/api/v1/metrics/request_count"]
)
@pytest.mark.parametrize(
    ("params", "field"), [({"to": "0.0"}, "to"), ({"from": "1700000000"}, "from"), ({"to": "1e9"}, "to")]
)
def test_timestamps_are_rfc_3339_not_unix_seconds(client: TestClient, path: str, params: dict, field: str) -> None:
    assert_problem(client.get(path, params=params), field, "must be an RFC 3339 timestamp")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/models", {"provider": "openai\n"}, "provider"),
        ("/api/v1/traces", {"provider": "openai\n"}, "provider"),
        ("/api/v1/traces", {"environment": "prod\x01"}, "environment"),
        ("/api/v1/sessions", {"environment": ""}, "environment"),
        ("/api/v1/logs", {"service": "api\x1f"}, "service"),
        ("/api/v1/logs", {"service": ""}, "service"),
        ("/api/v1/sessions/abc%0A", {}, "session_id"),
    ],
)
def test_identifiers_are_printable(client: TestClient, path: str, params: dict, field: str) -> None:
    assert_problem(client.get(path, params=params), field, "must be 1 to 200 printable characters")


def test_ids_with_a_trailing_newline_are_refused(client: TestClient) -> None:
    assert_problem(client.get(f"/api/v1/traces/{'a' * 32}%0A"), "trace_id", "32 lowercase hexadecimal")
    assert_problem(client.get("/api/v1/logs", params={"span_id": "a" * 16 + "\n"}), "span_id", "16 lowercase")


@pytest.mark.parametrize("body", [{"to": 0}, {"to": 0.0}, {"to": "1700000000"}, {"from": 1e9}])
def test_numbers_are_not_timestamps_in_bodies(client: TestClient, body: dict) -> None:
    (field,) = body
    for path, extra in ((SEARCH, {}), (METRICS, {"metrics": [{"id": "request_count"}]})):
        assert_problem(client.post(path, json={**body, **extra}), field, "must be an RFC 3339 timestamp")


def test_an_empty_filter_is_refused(client: TestClient) -> None:
    # Documented as a condition or and/or/not; the metric queries refused it already.
    assert_problem(client.post(SEARCH, json={"filter": {}}), "filter.field", "is required")
    assert_problem(client.post(METRICS, json={"metrics": [{"id": "request_count"}], "filter": {}}), "filter.field", "")


@pytest.mark.parametrize(
    ("path", "params", "field", "accepted"),
    [
        ("/api/v1/spans", {"kind": "LLM"}, "kind", "llm, embedding, chain, agent, tool, retriever, other"),
        ("/api/v1/traces", {"status": "failed"}, "status", "ok, error, unset"),  # a shared list filter
    ],
)
def test_an_enum_value_error_lists_the_accepted_values(
    client: TestClient, path: str, params: dict[str, str], field: str, accepted: str
) -> None:
    assert_problem(
        client.get(path, params=params), field, f"Invalid enum value {params[field]!r}; expected one of {accepted}"
    )
