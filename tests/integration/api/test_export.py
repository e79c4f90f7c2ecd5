"""GET /spans/export, /traces/export, /logs/export: every row of the list endpoints, streamed."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import zstandard
from litestar.testing import TestClient

from observatory_api.settings import DatabaseSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.api.test_traces import walk


def export(client: TestClient, path: str, params: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    response = client.get(path, params=params, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_span_export_is_every_row_of_the_list_in_its_order(client: TestClient, full_range: dict) -> None:
    listed = walk(client, "/api/v1/spans", {**full_range, "sort": "start_time", "limit": 1000})
    exported = export(client, "/api/v1/spans/export", full_range)
    # More than one list page (1,000 rows); the export's own reads (query.export_rows_per_read)
    # are walked across in tests/integration/exports/test_export_reads.py.
    assert len(listed) > 1000
    assert exported == listed


def test_span_export_filters_and_sorts_like_the_list(client: TestClient, full_range: dict) -> None:
    params = {**full_range, "kind": "llm", "model": "gpt-4o-mini", "sort": "-duration"}
    listed = walk(client, "/api/v1/spans", {**params, "limit": 100})
    assert listed
    assert export(client, "/api/v1/spans/export", params) == listed


def test_trace_and_log_exports_equal_their_lists(client: TestClient, full_range: dict) -> None:
    traces = walk(client, "/api/v1/traces", {**full_range, "sort": "start_time", "limit": 1000})
    assert export(client, "/api/v1/traces/export", full_range) == traces
    logs = walk(client, "/api/v1/logs", {**full_range, "limit": 1000})
    assert logs
    assert export(client, "/api/v1/logs/export", full_range) == logs


def test_csv_has_a_header_and_one_row_per_span_with_nested_values_as_json(client: TestClient, full_range: dict) -> None:
    listed = walk(client, "/api/v1/spans", {**full_range, "kind": "llm", "sort": "start_time", "limit": 1000})
    response = client.get("/api/v1/spans/export", params={**full_range, "kind": "llm"}, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="spans.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == len(listed)
    for row, span in zip(rows, listed, strict=True):
        assert (row["trace_id"], row["span_id"], row["model"]) == (span["trace_id"], span["span_id"], span["model"])
        assert json.loads(row["attributes"]) == span["attributes"]
        assert json.loads(row["tags"]) == span["tags"]
        assert float(row["duration_ms"]) == span["duration_ms"]
        assert (row["cost_usd"] or None) == (None if span["cost_usd"] is None else str(span["cost_usd"]))


def test_an_empty_csv_export_is_its_header(client: TestClient) -> None:
    params = {"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z", "format": "csv"}
    response = client.get("/api/v1/logs/export", params=params)
    assert response.status_code == 200
    assert (
        response.text.strip() == "log_id,time,trace_id,span_id,service_name,severity,body,attributes,content_redacted"
    )


@pytest.mark.parametrize(
    ("path", "identify", "cut"),
    [
        ("/api/v1/spans/export", lambda r: f"{r['trace_id']}:{r['span_id']}", 1234),
        ("/api/v1/traces/export", lambda r: r["trace_id"], 57),
        ("/api/v1/logs/export", lambda r: r["log_id"], 99),
    ],
)
def test_a_cut_export_resumes_after_the_last_row_received(
    client: TestClient, full_range: dict, path: str, identify: Any, cut: int
) -> None:
    whole = export(client, path, full_range)
    assert len(whole) > cut
    rest = export(client, path, {**full_range, "after": identify(whole[cut - 1])})
    assert whole[:cut] + rest == whole


def test_bad_export_parameters_are_problems_naming_the_field(client: TestClient, full_range: dict) -> None:
    cases = [
        ("/api/v1/spans/export", {"after": "nope"}, "after"),
        ("/api/v1/spans/export", {"after": f"{'a' * 32}:{'b' * 16}"}, "after"),  # no such span
        ("/api/v1/traces/export", {"after": "xyz"}, "after"),
        ("/api/v1/logs/export", {"after": "0" * 31}, "after"),
        ("/api/v1/spans/export", {"format": "xml"}, "format"),
        ("/api/v1/logs/export", {"trace_id": "xyz"}, "trace_id"),
    ]
    for path, params, field in cases:
        response = client.get(path, params={**full_range, **params})
        assert response.status_code == 400, (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.text, (path, params, response.text)


def test_an_export_is_gzipped_when_the_client_accepts_it(client: TestClient, full_range: dict) -> None:
    plain = client.get("/api/v1/logs/export", params=full_range, headers={"Accept-Encoding": "identity"})
    zipped = client.get("/api/v1/logs/export", params=full_range, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.text == plain.text  # httpx decoded it


def test_an_export_is_zstd_compressed_when_the_client_prefers_it(client: TestClient, full_range: dict) -> None:
    plain = client.get("/api/v1/spans/export", params=full_range, headers={"Accept-Encoding": "identity"})
    with client.stream(
        "GET", "/api/v1/spans/export", params=full_range, headers={"Accept-Encoding": "gzip, zstd"}
    ) as response:
        assert response.headers.get("content-encoding") == "zstd"
        assert "content-length" not in response.headers  # streamed, page by page
        body = b"".join(response.iter_raw())
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == plain.content


def test_a_viewers_export_has_no_content_and_cannot_search_it(
    client: TestClient, backend: str, seeded_databases: dict[str, DatabaseSettings], full_range: dict
) -> None:
    viewer = auth_headers(make_settings(seeded_databases[backend]), "viewer")
    spans = export(client, "/api/v1/spans/export", {**full_range, "kind": "llm"}, headers=viewer)
    assert spans and all(s["content_redacted"] and s["input"] is None and s["output"] is None for s in spans)
    logs = export(client, "/api/v1/logs/export", full_range, headers=viewer)
    assert logs and all(entry["body"] is None for entry in logs)
    developer_logs = export(client, "/api/v1/logs/export", full_range)
    assert any(entry["body"] for entry in developer_logs)
    for path in ("/api/v1/spans/export", "/api/v1/logs/export"):
        refused = client.get(path, params={**full_range, "q": "the"}, headers=viewer)
        assert refused.status_code == 400, refused.text


def test_a_search_export_is_every_trace_the_search_pages_return(client: TestClient, full_range: dict) -> None:
    body = {
        "from": full_range["from"],
        "to": full_range["to"],
        "sort": "start_time",
        "filter": {"field": "llm_call_count", "op": "gte", "value": 1},
    }
    pages: list[dict[str, Any]] = []
    search = {**body, "limit": 100}
    for _ in range(100):
        page = client.post("/api/v1/traces/search", json=search).json()
        pages.extend(page["data"])
        if not page["has_more"]:
            break
        search["cursor"] = page["next_cursor"]
    response = client.post("/api/v1/traces/export", json=body)
    assert response.status_code == 200, response.text
    exported = [json.loads(line) for line in response.text.splitlines()]
    assert len(pages) > 100
    assert exported == pages
    cut = 42
    resumed = client.post("/api/v1/traces/export", json=body, params={"after": exported[cut - 1]["trace_id"]})
    assert exported[:cut] + [json.loads(line) for line in resumed.text.splitlines()] == exported
    refused = client.post("/api/v1/traces/export", json={**body, "filter": {"field": "nope", "op": "eq", "value": 1}})
    assert refused.status_code == 400 and "filter" in refused.text
