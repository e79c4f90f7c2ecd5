"""NDJSON and CSV exports read `query.export_rows_per_read` rows at a time (here 700, so the
dataset takes several reads): the lines are byte for byte the list endpoint's items, for every
role, and OTLP/JSON keeps one request per list page."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, QuerySettings, RateLimitSettings
from tests.conftest import auth_headers, make_settings

ROWS_PER_READ = 700


class RawPage(msgspec.Struct):
    """A list page with each item as the exact bytes the service sent."""

    data: list[msgspec.Raw]
    next_cursor: str | None
    has_more: bool


@pytest.fixture(scope="module")
def small_reads(backend: str, seeded_databases: dict[str, DatabaseSettings]) -> Iterator[TestClient[Any]]:
    roles = {"admin": 1_000_000, "developer": 1_000_000, "viewer": 1_000_000}
    settings = make_settings(
        seeded_databases[backend],
        rate_limit=RateLimitSettings(roles=roles),
        query=QuerySettings(export_rows_per_read=ROWS_PER_READ),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(settings, "admin"))
        yield client


def listed_bytes(client: TestClient[Any], path: str, params: dict[str, Any], **kwargs: Any) -> list[bytes]:
    """Every item of the list, following its cursor, as sent."""
    items: list[bytes] = []
    params = {**params, "limit": 1000}
    for _ in range(500):
        response = client.get(path, params=params, **kwargs)
        assert response.status_code == 200, response.text
        page = msgspec.json.decode(response.content, type=RawPage)
        items.extend(bytes(item) for item in page.data)
        if not page.has_more:
            return items
        params["cursor"] = page.next_cursor
    raise AssertionError("pagination did not end")


def exported_lines(client: TestClient[Any], path: str, params: dict[str, Any], **kwargs: Any) -> list[bytes]:
    response = client.get(path, params=params, **kwargs)
    assert response.status_code == 200, response.text
    return response.content.splitlines()


@pytest.mark.parametrize("role", ["admin", "developer", "viewer"])
def test_span_lines_are_the_lists_items_byte_for_byte_across_reads(
    small_reads: TestClient[Any],
    backend: str,
    seeded_databases: dict[str, DatabaseSettings],
    full_range: dict,
    role: str,
) -> None:
    headers = auth_headers(make_settings(seeded_databases[backend]), role)
    params = {**full_range, "sort": "start_time"}
    lines = exported_lines(small_reads, "/api/v1/spans/export", params, headers=headers)
    assert len(lines) > 2 * ROWS_PER_READ
    assert lines == listed_bytes(small_reads, "/api/v1/spans", params, headers=headers)
    spans = [json.loads(line) for line in lines]
    # Times are RFC 3339 in UTC ("Z") on both databases, read with or without a processor.
    assert all(s["start_time"].endswith("Z") and s["end_time"].endswith("Z") for s in spans)
    assert all(s["content_redacted"] == (role == "viewer") for s in spans)


def test_trace_and_log_lines_are_the_lists_items_across_reads(small_reads: TestClient[Any], full_range: dict) -> None:
    params = {**full_range, "sort": "start_time"}
    traces = exported_lines(small_reads, "/api/v1/traces/export", params)
    assert traces  # 400 traces: one read
    assert traces == listed_bytes(small_reads, "/api/v1/traces", params)
    logs = exported_lines(small_reads, "/api/v1/logs/export", full_range)
    assert len(logs) > ROWS_PER_READ
    assert logs == listed_bytes(small_reads, "/api/v1/logs", full_range)


def test_a_csv_export_has_every_row_across_reads_and_one_header(small_reads: TestClient[Any], full_range: dict) -> None:
    params = {**full_range, "sort": "start_time"}
    lines = exported_lines(small_reads, "/api/v1/spans/export", params)
    response = small_reads.get("/api/v1/spans/export", params={**params, "format": "csv"})
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:2] == ["trace_id", "span_id"]
    assert [row[:2] for row in rows[1:]] == [[s["trace_id"], s["span_id"]] for s in map(json.loads, lines)]


def test_resuming_at_a_read_boundary_loses_and_repeats_nothing(small_reads: TestClient[Any], full_range: dict) -> None:
    params = {**full_range, "sort": "start_time"}
    lines = exported_lines(small_reads, "/api/v1/spans/export", params)
    for cut in (ROWS_PER_READ, ROWS_PER_READ + 1):
        last = json.loads(lines[cut - 1])
        after = f"{last['trace_id']}:{last['span_id']}"
        assert lines[:cut] + exported_lines(small_reads, "/api/v1/spans/export", {**params, "after": after}) == lines


def test_otlp_json_keeps_one_request_per_list_page(small_reads: TestClient[Any], full_range: dict) -> None:
    params = {**full_range, "sort": "start_time"}
    spans = len(exported_lines(small_reads, "/api/v1/spans/export", params))
    requests = exported_lines(small_reads, "/api/v1/spans/export", {**params, "format": "otlp-json"})
    assert len(requests) == -(-spans // 1000)  # query.max_page_size spans a line, not export_rows_per_read
