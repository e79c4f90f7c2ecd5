"""to_span_record on its own: what a blank identifier maps to."""

from __future__ import annotations

from observatory_api.ingest.mapping import to_span_record
from observatory_api.ingest.otlp import OtlpSpan
from observatory_api.ingest.report import IngestReport


def otlp_span(attributes: dict[str, object]) -> OtlpSpan:
    return OtlpSpan(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        name="chat",
        kind=1,
        start_ns=1_700_000_000_000_000_000,
        end_ns=1_700_000_001_000_000_000,
        status_code=1,
        status_message=None,
        attributes=attributes,
        resource={"service.name": "svc"},
    )


def test_an_empty_session_or_user_id_names_none() -> None:
    # An empty string would otherwise become one giant session of everything that sent it.
    record = to_span_record(otlp_span({"session.id": "", "user.id": ""}), IngestReport("spans"))
    assert (record.session_id, record.user_id) == (None, None)
    named = to_span_record(otlp_span({"session.id": "s-1", "user.id": 42}), IngestReport("spans"))
    assert (named.session_id, named.user_id) == ("s-1", "42")


def test_a_blank_value_gives_way_to_the_next_attribute() -> None:
    record = to_span_record(
        otlp_span({"gen_ai.conversation.id": "", "session.id": "abc", "user.id": "  "}), IngestReport("spans")
    )
    assert (record.session_id, record.user_id) == ("abc", None)
    # The blank values are not lost: they stay with the unmapped attributes.
    assert record.attributes["gen_ai.conversation.id"] == ""
    assert record.attributes["user.id"] == "  "
