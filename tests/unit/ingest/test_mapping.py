"""to_span_record on its own: what a blank identifier maps to."""

from __future__ import annotations

import pytest

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


# Each instrumentation's own spelling of user, session, environment and tags (read from their
# sources: openinference-semantic-conventions, the OTel GenAI conventions, traceloop-sdk's
# association properties, openlit's semcov, Langfuse's OtelIngestionProcessor).
VOCABULARIES: dict[str, dict[str, object]] = {
    "openinference": {"user.id": "u", "session.id": "s", "tag.tags": ["t1", "t2"]},
    "genai": {"user.id": "u", "gen_ai.conversation.id": "s", "deployment.environment.name": "e"},
    "traceloop": {
        "traceloop.association.properties.user_id": "u",
        "traceloop.association.properties.session_id": "s",
    },
    "traceloop-chat": {
        "traceloop.association.properties.user_id": "u",
        "traceloop.association.properties.chat_id": "s",
    },
    "openlit": {"gen_ai.request.user": "u", "gen_ai.session.id": "s", "deployment.environment": "e"},
    "openlit-framework": {"gen_ai.user.id": "u", "gen_ai.session.id": "s", "gen_ai.environment": "e"},
    "langfuse": {
        "langfuse.user.id": "u",
        "langfuse.session.id": "s",
        "langfuse.trace.tags": ["t1", "t2"],
        "langfuse.environment": "e",
    },
    "langfuse-metadata": {
        "langfuse.trace.metadata.langfuse_user_id": "u",
        "langfuse.trace.metadata.langfuse_session_id": "s",
        "langfuse.tags": '["t1", "t2"]',
    },
    "vercel-ai": {
        "ai.telemetry.metadata.userId": "u",
        "ai.telemetry.metadata.sessionId": "s",
        "ai.telemetry.metadata.tags": ["t1", "t2"],
    },
}


@pytest.mark.parametrize("vocabulary", VOCABULARIES)
def test_every_vocabulary_names_the_user_session_environment_and_tags(vocabulary: str) -> None:
    attributes = VOCABULARIES[vocabulary]
    record = to_span_record(otlp_span(dict(attributes)), IngestReport("spans"))
    assert (record.user_id, record.session_id) == ("u", "s")
    if any("environment" in key for key in attributes):
        assert record.environment == "e"
    if any("tags" in key for key in attributes):
        assert record.tags == ["t1", "t2"]
    # A key read for a column is not kept a second time in `attributes`.
    assert not set(attributes) & set(record.attributes)


@pytest.mark.parametrize(
    ("sent", "tags"),
    [
        ("a, b", ["a", "b"]),  # Langfuse accepts tags separated by commas
        ('["a", "b"]', ["a", "b"]),
        ("solo", ["solo"]),
        ("[not json", ["[not json"]),
        (42, []),
    ],
)
def test_tags_sent_as_a_string(sent: object, tags: list[str]) -> None:
    assert to_span_record(otlp_span({"langfuse.trace.tags": sent}), IngestReport("spans")).tags == tags


def test_langfuse_environment_on_the_resource() -> None:
    span = otlp_span({})
    span.resource = {"service.name": "svc", "langfuse.environment": "staging"}
    assert to_span_record(span, IngestReport("spans")).environment == "staging"


OPENLIT_STREAM = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.stream": True,
    "gen_ai.usage.input_tokens": 57,
    "gen_ai.usage.output_tokens": 36,
    "gen_ai.usage.cost": 3.015e-05,
}


@pytest.mark.parametrize(
    ("scope", "extra", "estimated"),
    [
        # A stream with no usage in the answer: OpenLIT counted the tokens itself.
        ("openlit.instrumentation.openai", {}, True),
        # The answer's usage: OpenLIT then always sets the cache token attributes (0 included).
        ("openlit.instrumentation.openai", {"gen_ai.usage.cache_read.input_tokens": 0}, False),
        ("openlit.instrumentation.openai", {"gen_ai.request.stream": False}, False),
        # Other instrumentations report the provider's usage only.
        ("opentelemetry.instrumentation.openai_v2", {}, False),
    ],
)
def test_openlit_s_estimated_stream_usage_is_not_stored_as_billed(
    scope: str, extra: dict[str, object], estimated: bool
) -> None:
    span = otlp_span({**OPENLIT_STREAM, **extra})
    span.scope = scope
    record = to_span_record(span, IngestReport("spans"))
    columns = (record.input_tokens, record.output_tokens, record.total_tokens, record.cost_usd)
    if estimated:
        assert columns == (None, None, None, None)
        # What OpenLIT sent is kept as sent, beside the other unmapped attributes.
        assert record.attributes["gen_ai.usage.input_tokens"] == 57
        assert record.attributes["gen_ai.usage.cost"] == 3.015e-05
    else:
        assert columns == (57, 36, 93, 3.015e-05)
        assert "gen_ai.usage.input_tokens" not in record.attributes
