"""Where the export CLI cuts a stream into complete records (what it writes and resumes after)."""

from __future__ import annotations

import csv
import io

from observatory_api.exports.cli import after_of, record_ends


def csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


HEADER = ["trace_id", "span_id", "input"]
ROWS = [
    ["a" * 32, "1" * 16, 'a prompt\nover "two" lines,\nthree'],
    ["b" * 32, "2" * 16, "plain"],
    ["c" * 32, "3" * 16, '""\n'],
]


def test_csv_records_end_at_newlines_outside_quotes() -> None:
    data = csv_text([HEADER, *ROWS])
    ends = record_ends(data, "csv")
    assert len(ends) == 4 and ends[-1] == len(data)
    records = [data[start:end] for start, end in zip([0, *ends], ends, strict=False)]
    assert [next(csv.reader(io.StringIO(r.decode()))) for r in records] == [HEADER, *ROWS]


def test_a_cut_inside_a_quoted_newline_keeps_the_record_pending() -> None:
    data = csv_text([HEADER, *ROWS])
    inside = data.index(b"prompt\n") + len(b"prompt\n")  # after the newline inside the first row's field
    assert record_ends(data[:inside], "csv") == [len(csv_text([HEADER]))]
    # NDJSON has no quoted newlines: every newline ends a line.
    assert record_ends(b'{"a":1}\n{"b":2}\n{"c"', "ndjson") == [8, 16]


def test_a_csv_record_resumes_after_its_ids() -> None:
    header, first = csv_text([HEADER]), csv_text([ROWS[0]])
    assert after_of("spans", first, "csv", header) == f"{'a' * 32}:{'1' * 16}"
    logs = csv_text([["time", "log_id"], ["2026-12-01T00:00:00Z", "d" * 32]])
    ends = record_ends(logs, "csv")
    assert after_of("logs", logs[ends[0] :], "csv", logs[: ends[0]]) == "d" * 32
