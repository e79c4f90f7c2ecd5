"""`format=parquet`: a typed Parquet file, a row group per ROWS_PER_GROUP rows, with the rows of the list."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litestar.testing import TestClient

from observatory_api.exports.parquet import ROWS_PER_GROUP
from tests.integration.api.test_export import export


def parquet(client: TestClient[Any], path: str, params: dict[str, Any], **kwargs: Any) -> pq.ParquetFile:
    response = client.get(path, params=params, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.apache.parquet")
    return pq.ParquetFile(io.BytesIO(response.content))


def as_listed(row: dict[str, Any], json_columns: set[str]) -> dict[str, Any]:
    """A Parquet row in the list's JSON shape (timestamps as RFC 3339, JSON text decoded)."""
    out = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif name in json_columns and value is not None:
            value = json.loads(value)
        out[name] = value
    return out


def test_a_span_parquet_export_has_a_typed_schema_and_the_lists_rows(
    client: TestClient[Any], full_range: dict[str, str]
) -> None:
    listed = export(client, "/api/v1/spans/export", full_range)
    file = parquet(client, "/api/v1/spans/export", {**full_range, "format": "parquet"})
    schema = file.schema_arrow
    assert schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("input_tokens").type == pa.int64()
    assert schema.field("duration_ms").type == pa.float64()
    assert schema.field("content_redacted").type == pa.bool_()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("attributes").type == pa.string()  # JSON text
    # A row group per ROWS_PER_GROUP rows, not one per 1,000-row read.
    assert len(listed) > 1000
    assert file.metadata.num_row_groups == -(-len(listed) // ROWS_PER_GROUP)
    rows = file.read().to_pylist()
    assert [as_listed(row, {"attributes"}) for row in rows] == listed


def test_trace_parquet_by_accept_and_an_empty_export_is_a_valid_file(
    client: TestClient[Any], full_range: dict[str, str]
) -> None:
    listed = export(client, "/api/v1/traces/export", full_range)
    file = parquet(client, "/api/v1/traces/export", full_range, headers={"Accept": "application/vnd.apache.parquet"})
    assert [as_listed(row, set()) for row in file.read().to_pylist()] == listed
    empty = parquet(
        client,
        "/api/v1/logs/export",
        {"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z", "format": "parquet"},
    )
    assert empty.metadata.num_rows == 0
    assert "body" in empty.schema_arrow.names


def test_without_pyarrow_parquet_is_a_problem_saying_what_to_install(
    client: TestClient[Any], full_range: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a server installed without the [parquet] extra: importing pyarrow fails.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    response = client.get("/api/v1/spans/export", params={**full_range, "format": "parquet"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "format" in response.text and "observatory-api[parquet]" in response.text
