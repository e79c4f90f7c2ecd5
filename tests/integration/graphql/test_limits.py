"""The cost estimate on coerced variables (defaults included) and the per-request row budget
(`graphql.max_rows`): the shape of the issue-20 attack is refused before any read when the estimate
can tell, and by the budget, with one error and no partial answer, when it cannot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from observatory_api.app import create_app
from observatory_api.core.records import SpanRecord
from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings, GraphQLSettings, RateLimitSettings
from observatory_api.storage import TelemetryWriter
from tests.conftest import auth_headers, make_settings
from tests.integration.graphql.helpers import app_client, data, gql

# Fifteen aliases of a page of spans, whose size hides in a variable's default (the attack of issue 20).
ATTACK = (
    "query($l: Int = 1000, $f: SpanFilter) { "
    + " ".join(f"a{i}: spans(limit: $l, filter: $f) {{ id name model duration attributes }}" for i in range(15))
    + " }"
)


def test_a_variable_default_counts_as_the_value_sent(client: TestClient, statements: list[str]) -> None:
    query = "query($l: Int = 1000) { traces(limit: $l) { spans { id } } }"
    for variables in ({}, {"l": 1000}):
        error = gql(client, query, variables)["errors"][0]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert "estimated cost is 1001" in error["message"]
    assert statements == [], "a refused query reads nothing"
    # The value sent wins over the default; null is no limit (the page size).
    assert "errors" not in gql(client, query, {"l": 5})
    assert "errors" not in gql(client, query, {"l": None})


def test_a_default_used_in_a_fragment_on_a_nested_list_counts(client: TestClient, statements: list[str]) -> None:
    query = """query($n: Int = 100) { sessions(limit: 10) { ...S } }
      fragment S on Session { traces(limit: $n) { spans { id } } }"""
    assert "estimated cost is 1011" in gql(client, query)["errors"][0]["message"]
    assert statements == []
    assert "errors" not in gql(client, query, {"n": 5})


def test_the_attack_shape_is_refused_before_any_read(client: TestClient, statements: list[str], window: dict) -> None:
    body = gql(client, ATTACK, {"f": window})
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "ROW_BUDGET_EXCEEDED"
    assert "about 15000 rows, above the limit of 10000" in error["message"]
    assert statements == [], "refused before the database work"
    # Nested, the same pages are refused by their cost.
    nested = gql(client, ATTACK.replace("attributes", "attributes parent { id }"), {"f": window})
    assert "estimated cost is" in nested["errors"][0]["message"]
    assert statements == []
    # The same aliases with a small page pass.
    assert len(data(client, ATTACK.replace("= 1000", "= 20"), {"f": window})["a14"]) == 20


# ------------------------------------------------------------------ where only the budget can tell

TRACES, SPANS_PER_TRACE = 12, 150
BUDGET = 1000


def wide_traces(end: datetime) -> list[SpanRecord]:
    """TRACES traces of SPANS_PER_TRACE spans each (one root, the rest its children), interleaved in time."""
    records = []
    for t in range(1, TRACES + 1):
        trace_id, root = f"{t:032x}", f"{t:08x}{1:08x}"
        for i in range(1, SPANS_PER_TRACE + 1):
            start = end - timedelta(minutes=30) + timedelta(seconds=i, milliseconds=t)
            records.append(
                SpanRecord(
                    trace_id=trace_id,
                    span_id=f"{t:08x}{i:08x}",
                    parent_span_id=None if i == 1 else root,
                    service_name="wide",
                    name=f"step-{i}",
                    kind="tool",
                    start_time=start,
                    end_time=start + timedelta(milliseconds=200),
                    duration_ms=200.0,
                )
            )
    return records


def write(database: DatabaseSettings, records: list[SpanRecord]) -> None:
    async def run() -> None:
        engine = create_engine(database, database_url(database))
        await TelemetryWriter(engine).write_spans(records)
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def wide(migrated_database: DatabaseSettings) -> Iterator[TestClient]:
    """An app over TRACES wide traces (of the last hour), with a row budget of BUDGET."""
    write(migrated_database, wide_traces(datetime.now(UTC)))
    settings = make_settings(
        migrated_database,
        graphql=GraphQLSettings(max_rows=BUDGET),
        rate_limit=RateLimitSettings(roles={"developer": 1_000_000}),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(settings, "developer"))
        yield client


@contextmanager
def recorded(client: TestClient) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = client.app.state.resources.read_engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def refused_by_the_budget(body: dict[str, Any]) -> None:
    assert body["data"] is None, "no partial answer"
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "ROW_BUDGET_EXCEEDED"}
    assert f"more than {BUDGET} rows" in error["message"]


def test_spans_beyond_the_estimate_are_stopped_before_they_are_read(wide: TestClient) -> None:
    # Estimated 12 traces x 10 spans: within the budget; really 12 x 150 = 1,800 spans.
    query = "query($l: Int = 12) { traces(limit: $l) { id spans { id name } } }"
    with recorded(wide) as statements:
        refused_by_the_budget(gql(wide, query))
    # The traces' span counts spent the budget before the spans' statement could start.
    assert statements and not any("FROM spans" in s for s in statements), statements
    # Within the budget the same shape answers in full (and reads the spans: the check above can fail).
    with recorded(wide) as statements:
        traces = data(wide, query, {"l": 6})["traces"]
    assert any("FROM spans" in s for s in statements), statements
    assert len(traces) == 6 and all(len(t["spans"]) == SPANS_PER_TRACE for t in traces)


def test_rows_read_for_children_count(wide: TestClient) -> None:
    # 24 spans of all 12 traces: their children need every span of those traces (1,800 rows).
    query = "query($l: Int = 24) { spans(limit: $l) { id children { id } } }"
    refused_by_the_budget(gql(wide, query))
    assert len(data(wide, query, {"l": 3})["spans"]) == 3


def test_objects_returned_count_too(wide: TestClient) -> None:
    # One trace read once (150 spans), but returned 150 times over through the cycle span -> trace.
    query = "query($id: String!) { trace(id: $id) { spans { trace { spans { id } } } } }"
    refused_by_the_budget(gql(wide, query, {"id": f"{1:032x}"}))
    one = data(wide, "query($id: String!) { trace(id: $id) { spans { id } } }", {"id": f"{1:032x}"})
    assert len(one["trace"]["spans"]) == SPANS_PER_TRACE


def test_the_budget_is_per_request_and_configurable(seeded_databases: dict, window: dict) -> None:
    with app_client(seeded_databases, graphql=GraphQLSettings(max_rows=30)) as client:
        query = "query($f: TraceFilter) { traces(filter: $f, limit: 20) { id } }"
        for _ in range(3):  # each request has its own budget
            assert len(data(client, query, {"f": window})["traces"]) == 20
        body = gql(client, query.replace("limit: 20", "limit: 31"), {"f": window})
        assert body["errors"][0]["extensions"]["code"] == "ROW_BUDGET_EXCEEDED"
