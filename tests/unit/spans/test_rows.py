"""spans.rows: a row selected in Span's field order becomes a Span positionally, redacted for roles
without content access."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from observatory_api.db import tables
from observatory_api.spans.rows import span_columns, span_from_row
from observatory_api.spans.schemas import Span, SpanNode

STARTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def a_row(**overrides: object) -> tuple[object, ...]:
    """A row as `select(*span_columns(allow_content=True))` gives it: values in column order."""
    values: dict[str, object] = {column.name: None for column in tables.spans.c}
    values.update(
        trace_id="a" * 32,
        span_id="b" * 16,
        service_name="svc",
        name="chat",
        kind="llm",
        start_time=STARTED,
        end_time=STARTED,
        duration_ms=1.5,
        status="ok",
        tags=["t"],
        input="the prompt",
        output="the answer",
        status_message="an error quoting the prompt",
        attributes={"llm.temperature": 0.7, "input.value": "the prompt"},
    )
    values.update(overrides)
    return tuple(values[str(column.key)] for column in span_columns(allow_content=True))


def test_the_columns_are_every_stored_field_of_a_span_in_its_order() -> None:
    names = [column.key for column in span_columns(allow_content=True)]
    assert names == list(Span.__struct_fields__[:-1])  # content_redacted is not stored
    assert sorted(names) == sorted(column.name for column in tables.spans.c)
    assert [column.key for column in span_columns(allow_content=False)] == names


def test_a_row_becomes_the_span_it_names() -> None:
    span = span_from_row(a_row(), allow_content=True, make=Span)
    decoded = msgspec.json.decode(msgspec.json.encode(span))
    assert decoded["trace_id"] == "a" * 32 and decoded["input"] == "the prompt"
    assert decoded["attributes"] == {"llm.temperature": 0.7, "input.value": "the prompt"}
    assert decoded["start_time"] == "2026-12-01T12:00:00Z"
    assert decoded["content_redacted"] is False
    node = span_from_row(a_row(), allow_content=True, make=SpanNode)
    assert isinstance(node, SpanNode) and node.children == []


def test_without_content_access_content_attributes_are_dropped_and_the_span_says_so() -> None:
    # The redacted selection reads the content columns as NULL; the row carries what it would.
    row = a_row(input=None, output=None, status_message=None)
    span = span_from_row(row, allow_content=False, make=Span)
    assert span.content_redacted is True
    assert span.attributes == {"llm.temperature": 0.7}
    assert (span.input, span.output, span.status_message) == (None, None, None)
