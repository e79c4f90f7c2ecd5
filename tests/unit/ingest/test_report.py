"""What a request's report tells the exporter, and how often it is logged."""

from __future__ import annotations

import logging

from observatory_api.ingest.report import IngestReport, IngestWarnings


def test_the_partial_success_message_lists_a_few_examples_and_counts_the_rest() -> None:
    report = IngestReport("spans")
    assert report.error_message() is None
    for index in range(7):
        report.reject("invalid_id", f"spanId #{index} must be 8 non-zero bytes")
    report.drop("gen_ai.usage.input_tokens", "invalid_value", "input_tokens must be a number")
    report.drop(5, "invalid_value", "the key is not a string")
    report.strip("a\x00b")
    assert report.error_message() == (
        "7 spans rejected: spanId #0 must be 8 non-zero bytes, spanId #1 must be 8 non-zero bytes, spanId #2 must "
        "be 8 non-zero bytes, spanId #3 must be 8 non-zero bytes, spanId #4 must be 8 non-zero bytes and 2 more; "
        "2 attributes dropped: gen_ai.usage.input_tokens (input_tokens must be a number), "
        "a int key (the key is not a string); NUL characters removed from 1 string"
    )


def test_a_warning_names_the_service_even_when_the_loss_came_before_it_was_known() -> None:
    report = IngestReport("logs")
    report.enter_resource()
    report.strip("\x00")  # in the resource's own attributes
    report.set_service("billing")
    fields = report.warning_fields()
    assert fields is not None
    assert (fields["services"], fields["nul_strings_stripped"]) == (["billing"], 1)


def test_warnings_are_held_back_within_the_interval_and_counted() -> None:
    now = [100.0]
    warnings = IngestWarnings(interval_seconds=10, clock=lambda: now[0])
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("observatory_api.ingest").addHandler(handler)
    try:
        report = IngestReport("spans")
        report.set_service("svc")
        report.drop("k", "too_deep", "nested deeper than 20 levels")
        assert warnings.warn(report) is True
        now[0] += 5
        assert warnings.warn(report) is False
        assert warnings.warn(report) is False
        assert warnings.warn(IngestReport("spans")) is False  # nothing lost: nothing to say
        now[0] += 6
        assert warnings.warn(report) is True
    finally:
        logging.getLogger("observatory_api.ingest").removeHandler(handler)
    assert [record.similar_requests_not_logged for record in records] == [0, 2]  # type: ignore[attr-defined]
