"""Exports read from compressed chunks (written to again) give what plain PostgreSQL gives.

TimescaleDB 2.28.3 corrupts decompressed text when the rows are materialised into a table
(`CREATE TABLE AS SELECT * FROM spans`, timescale/timescaledb#10585): an export must stream what
it reads, and this compares every prompt, completion and attribute of the export with plain
PostgreSQL's, on a dataset whose chunks are all compressed.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from litestar.testing import TestClient

from tests.dataset import DATASET_END
from tests.integration.timescaledb.conftest import Pair

WINDOW = {
    "from": (DATASET_END - timedelta(days=30, minutes=1)).isoformat(),
    "to": (DATASET_END + timedelta(minutes=1)).isoformat(),
}


@pytest.mark.parametrize("kind", ["spans", "traces", "logs"])
def test_an_ndjson_export_over_every_compressed_chunk_equals_plain_postgresql(
    clients: dict[str, TestClient], compressed_pair: Pair, kind: str
) -> None:
    assert compressed_pair.compressed_chunks >= 40
    answers = [clients[name].get(f"/api/v1/{kind}/export", params=WINDOW) for name in ("timescaledb", "plain")]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text[:300]
    rows = [[json.loads(line) for line in a.text.splitlines()] for a in answers]
    assert len(rows[0]) > 200
    assert rows[0] == rows[1]
    if kind == "spans":
        assert sum(bool(row.get("input")) for row in rows[0]) > 100  # prompts were read, not only metadata


def test_a_csv_export_of_spans_equals_plain_postgresql_byte_for_byte(clients: dict[str, TestClient]) -> None:
    answers = [
        clients[name].get("/api/v1/spans/export", params={**WINDOW, "format": "csv"})
        for name in ("timescaledb", "plain")
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content.count(b"\n") > 200
    assert answers[0].content == answers[1].content
