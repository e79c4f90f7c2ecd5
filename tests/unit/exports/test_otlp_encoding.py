"""The OTLP/JSON encoding of stored values: exact times, typed values, events with their times."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec

from observatory_api.exports.cli import after_of
from observatory_api.exports.otlp import any_value, nanoseconds, trace_request
from observatory_api.spans.schemas import Span


def test_nanoseconds_are_exact_to_the_microsecond_far_from_the_epoch() -> None:
    moment = datetime(2026, 11, 19, 23, 59, 59, 999_999, tzinfo=UTC)
    assert nanoseconds(moment) == int(moment.timestamp()) * 1_000_000_000 + 999_999_000
    assert nanoseconds(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_values_keep_their_types() -> None:
    assert any_value(True) == {"boolValue": True}
    assert any_value(2**40) == {"intValue": str(2**40)}
    assert any_value(1.5) == {"doubleValue": 1.5}
    assert any_value("NaN") == {"stringValue": "NaN"}
    assert any_value(None) == {}
    assert any_value({"a": [1, "x"]}) == {
        "kvlistValue": {
            "values": [{"key": "a", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "x"}]}}}]
        }
    }


def _span(attributes: dict[str, object]) -> Span:
    start = datetime(2026, 11, 1, 12, 0, 0, 250, tzinfo=UTC)
    return Span(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        service_name="svc",
        name="chat",
        kind="llm",
        start_time=start,
        end_time=start,
        duration_ms=0.0,
        provider="openai",
        model="gpt-4o",
        model_id="openai/gpt-4o",
        input_tokens=3,
        output_tokens=None,
        total_tokens=3,
        cache_read_input_tokens=None,
        cache_creation_input_tokens=None,
        reasoning_output_tokens=None,
        cost_usd=None,
        cost_source=None,
        time_to_first_token_ms=None,
        status="error",
        status_message="boom",
        finish_reason="stop",
        user_id=None,
        session_id=None,
        environment="prod",
        tags=["t"],
        input="hi",
        output=None,
        attributes=attributes,
    )


def test_a_span_goes_back_under_ingests_keys_with_resource_scope_and_events_restored() -> None:
    span = _span(
        {
            "resource": {"host.name": "h1"},
            "otel.scope.name": "openinference",
            "events": [{"name": "exception", "time": "2026-11-01T12:00:00.000500+00:00", "exception.type": "E"}],
            "gen_ai.response.model": "",  # a blank kept by ingest: the model goes under the next key
            "custom": 1,
        }
    )
    (resource,) = trace_request([span])["resourceSpans"]
    assert {a["key"]: a["value"] for a in resource["resource"]["attributes"]} == {
        "service.name": {"stringValue": "svc"},
        "host.name": {"stringValue": "h1"},
    }
    (scope,) = resource["scopeSpans"]
    assert scope["scope"] == {"name": "openinference"}
    (encoded,) = scope["spans"]
    attributes = {a["key"]: a["value"] for a in encoded["attributes"]}
    assert attributes["gen_ai.response.model"] == {"stringValue": ""}
    assert attributes["gen_ai.request.model"] == {"stringValue": "gpt-4o"}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "3"}
    assert attributes["gen_ai.response.finish_reasons"] == {"arrayValue": {"values": [{"stringValue": "stop"}]}}
    assert attributes["openinference.span.kind"] == {"stringValue": "llm"}
    assert attributes["deployment.environment.name"] == {"stringValue": "prod"}
    assert attributes["gen_ai.input.messages"] == {"stringValue": "hi"}
    assert not {"resource", "otel.scope.name", "events"} & attributes.keys()
    assert encoded["status"] == {"code": "STATUS_CODE_ERROR", "message": "boom"}
    assert encoded["startTimeUnixNano"] == str(nanoseconds(span.start_time))
    (event,) = encoded["events"]
    assert event["name"] == "exception"
    assert event["timeUnixNano"] == str(nanoseconds(span.start_time) + 250_000)
    assert event["attributes"] == [{"key": "exception.type", "value": {"stringValue": "E"}}]


def test_the_last_span_of_a_request_is_the_last_of_its_page() -> None:
    """Where a cut OTLP/JSON export resumes: the group of the page's last span comes last."""
    first = _span({"resource": {"host.name": "h2"}})
    middle = msgspec.structs.replace(_span({"resource": {"host.name": "h1"}}), span_id="c" * 16)
    last = msgspec.structs.replace(_span({"resource": {"host.name": "h2"}}), span_id="d" * 16)
    request = trace_request([first, middle, last])
    assert request["resourceSpans"][-1]["scopeSpans"][-1]["spans"][-1]["spanId"] == "d" * 16
    assert after_of("spans", json.dumps(request).encode(), "otlp-json") == f"{'a' * 32}:{'d' * 16}"
    assert sorted(s["spanId"] for r in request["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]) == [
        "b" * 16,
        "c" * 16,
        "d" * 16,
    ]
