"""Parquet row groups: ROWS_PER_GROUP rows each whatever the pages, so a long export's footer
holds few groups (pyarrow keeps each group's metadata until the file ends) and the CLI's file,
written from pages of its own size, is the service's byte for byte."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import msgspec
import pyarrow.parquet as pq

from observatory_api.exports.parquet import ROWS_PER_GROUP, ParquetPageWriter


class Row(msgspec.Struct):
    name: str
    count: int
    at: datetime
    attributes: dict[str, int]
    input: str | None = None


def rows(n: int) -> list[Row]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [Row(f"r{i}", i, start + timedelta(seconds=i), {"i": i}, f"prompt {i} " * 50) for i in range(n)]


def written(records: list[Row], page: int, rows_per_group: int) -> bytes:
    writer = ParquetPageWriter(Row, rows_per_group)
    parts = [writer.page(records[start : start + page]) for start in range(0, len(records), page)]
    return b"".join(parts) + writer.finish()


def test_row_groups_hold_rows_per_group_rows_whatever_the_page_size() -> None:
    records = rows(2_350)
    files = [written(records, page, 1_000) for page in (1_000, 300, 2_350)]
    for data in files:
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1_000, 1_000, 350]
        table = pq.read_table(io.BytesIO(data))
        assert table.column("count").to_pylist() == list(range(2_350))
        assert table.column("attributes").to_pylist()[7] == '{"i":7}'
    assert files[0] == files[1]  # pages of 1,000 or 300: the same file


def test_a_group_is_written_as_soon_as_it_is_full() -> None:
    writer = ParquetPageWriter(Row, 1_000)
    start = len(writer.page(rows(999)))
    assert len(writer.page(rows(1))) > 10_000  # the group's column chunks, compressed
    writer.finish()
    assert start < 100  # no group before that: at most the file's magic


def test_the_default_group_is_ten_thousand_rows_and_an_empty_export_has_none() -> None:
    assert ROWS_PER_GROUP == 10_000
    writer = ParquetPageWriter(Row)
    empty = pq.ParquetFile(io.BytesIO(writer.page([]) + writer.finish()))
    assert empty.metadata.num_rows == 0 and empty.metadata.num_row_groups == 0


def test_content_and_json_columns_carry_no_statistics_and_the_others_do() -> None:
    # Long min/max strings of prompts would sit in the footer once per row group, kept in memory
    # until the export ends; the short columns keep theirs for readers that prune on them.
    metadata = pq.ParquetFile(io.BytesIO(written(rows(30), 10, 10))).metadata
    assert metadata.num_row_groups == 3
    for group in range(metadata.num_row_groups):
        columns = {
            metadata.row_group(group).column(i).path_in_schema: metadata.row_group(group).column(i) for i in range(5)
        }
        assert not columns["input"].is_stats_set
        assert not columns["attributes"].is_stats_set
        assert columns["name"].is_stats_set and columns["count"].is_stats_set and columns["at"].is_stats_set
