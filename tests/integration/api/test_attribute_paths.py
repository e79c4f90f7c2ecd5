"""Attribute paths in the filter language: any key but `"` and control characters is addressed as
one key (bound as data: a text[] on PostgreSQL, a quoted JSON path label on SQLite), and a malformed
path is a 400 naming the field. On both backends, through the real app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import Response
from litestar.testing import AsyncTestClient, TestClient

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings
from observatory_api.storage import SpanRecord, TelemetryWriter
from tests.conftest import auth_headers, make_settings

SEARCH = "/api/v1/traces/search"


def assert_problem(response: Response, field: str, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    (error,) = response.json()["errors"]
    assert error["field"] == field and reason in error["reason"], error


@pytest.mark.parametrize(
    "field",
    [
        'attributes["a"b"]',
        'attributes["a\x01"]',
        "attributes[a]",
        'attributes[""]',
        "attributes.",
        "attributes.a..b",
        "attributes.a b",
        'attributes.a["b"',
        "attributes." + "k" * 101,
    ],
)
def test_malformed_attribute_paths_are_400(client: TestClient, full_range: dict, field: str) -> None:
    body = {**full_range, "filter": {"field": field, "op": "eq", "value": "x"}}
    response = client.post(SEARCH, json=body)
    assert_problem(response, "filter.field", "an attribute path is attributes.<key> or attributes[")


# Keys that would break a PostgreSQL array literal or a SQLite JSON path if they were pasted in.
AWKWARD_KEYS = ["a,b", "a}", "{a", "sp ace", " lead", "a.b", "a[0]", "é", "back\\slash", "$x", "'quote", "a]"]


def awkward_span(n: int, attributes: dict[str, Any], start: datetime) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        service_name="awkward-keys",
        name="step",
        kind="tool",
        start_time=start,
        end_time=start + timedelta(seconds=1),
        duration_ms=1000.0,
        attributes=attributes,
    )


async def test_awkward_attribute_keys_address_exactly_one_key(migrated_database: DatabaseSettings) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    spans = [awkward_span(i + 1, {key: f"value-{i}"}, start) for i, key in enumerate(AWKWARD_KEYS)]
    # `a,b` must not be read as the nested path a -> b.
    spans.append(awkward_span(100, {"a": {"b": "value-0"}}, start))
    engine = create_engine(migrated_database, database_url(migrated_database))
    try:
        await TelemetryWriter(engine).write_spans(spans)
    finally:
        await engine.dispose()
    settings = make_settings(migrated_database)
    window = {"from": start.isoformat(), "to": (start + timedelta(hours=1)).isoformat()}
    async with AsyncTestClient(create_app(settings)) as client:
        client.headers.update(auth_headers(settings))
        for i, key in enumerate(AWKWARD_KEYS):
            field = f'attributes["{key}"]'
            for op, value in (("eq", f"value-{i}"), ("contains", f"ue-{i}"), ("exists", True)):
                body = {**window, "limit": 100, "filter": {"field": field, "op": op, "value": value}}
                response = await client.post(SEARCH, json=body)
                assert response.status_code == 200, (key, op, response.text)
                assert [t["trace_id"] for t in response.json()["data"]] == [f"{i + 1:032x}"], (key, op)
        nested = {**window, "filter": {"field": 'attributes["a"]["b"]', "op": "eq", "value": "value-0"}}
        response = await client.post(SEARCH, json=nested)
        assert [t["trace_id"] for t in response.json()["data"]] == [f"{100:032x}"]
