"""What ingest does with values it cannot store as sent, on both backends and in both encodings:
NUL characters are removed, absurd timestamps reject their span alone, values nested too deep or
of the wrong type drop their attribute alone; `partial_success` says so, counters count it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from observatory_api.ingest.limits import MAX_VALUE_DEPTH
from observatory_api.settings import DatabaseSettings
from tests.integration.ingest.helpers import (
    counter,
    holds_nul,
    ingest_client,
    ingest_warnings,
    stored_logs,
    stored_spans,
)
from tests.integration.ingest.payloads import (
    ENCODINGS,
    JSON,
    PROTOBUF,
    SERVICE,
    as_json,
    encoded,
    field,
    key_values,
    log_record,
    logs_request,
    nested_value,
    new_trace_id,
    raw_trace_request,
    span,
    trace_request,
)

TIME_RANGE = "outside 2000-01-01..2100-01-01"


def partial(response: Any, encoding: str, field_name: str = "rejectedSpans") -> tuple[int, str]:
    """(rejected count, error message) of an OTLP answer in either encoding."""
    assert response.status_code == 200, response.text
    if encoding == "json":
        body = response.json().get("partialSuccess", {})
        return int(body.get(field_name, 0)), body.get("errorMessage", "")
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    if field_name == "rejectedSpans":
        traces = ExportTraceServiceResponse.FromString(response.content)
        return traces.partial_success.rejected_spans, traces.partial_success.error_message
    logs = ExportLogsServiceResponse.FromString(response.content)
    return logs.partial_success.rejected_log_records, logs.partial_success.error_message


def nul_spans(trace_id: bytes) -> list[Span]:
    """Ten spans; a NUL in a different place in nine of them (15 strings in all, 16 with the scope)."""
    error = Status(code=Status.STATUS_CODE_ERROR, message="bad\x00 thing")
    retry = Span.Event(name="retry\x00", time_unix_nano=1, attributes=key_values({"attempt\x00": "1\x00"}))
    return [
        span(trace_id, 0, name="chat\x00 gpt"),
        span(trace_id, 1, attributes=key_values({"user\x00.tier": "gold"})),
        span(trace_id, 2, attributes=key_values({"input.value": "hello\x00 world"})),
        span(trace_id, 3, attributes=key_values({"meta": {"k\x00": ["a\x00", {"deep\x00": "v\x00"}]}})),
        span(trace_id, 4, status=error),
        span(trace_id, 5, attributes=key_values({"session.id": "sess\x00-1"})),
        span(trace_id, 6, events=[retry]),
        span(trace_id, 7, attributes=key_values({"tag.tags": ["a\x00", "b"]})),
        span(trace_id, 8, attributes=key_values({"gen_ai.request.model": "gpt\x00-4o"})),
        span(trace_id, 9, attributes=key_values({"plain": "no nul here"})),
    ]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_nul_characters_are_removed_and_every_span_stored(
    migrated_database: DatabaseSettings, encoding: str
) -> None:
    trace_id = new_trace_id()
    request = trace_request(nul_spans(trace_id), resource={"service.name": SERVICE, "team": "ml\x00"}, scope="lib\x00")
    body, headers = encoded(request, encoding)
    before = counter("ingest_nul_strings_stripped_total", signal="spans")
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/traces", content=body, headers={**credential, **headers})

    assert partial(response, encoding) == (0, "NUL characters removed from 16 strings")
    rows = await stored_spans(migrated_database, trace_id.hex())
    assert len(rows) == 10
    assert not any(holds_nul(value) for row in rows for value in row.values())
    by_index = {int(row["span_id"], 16) - 1: row for row in rows}
    assert by_index[0]["name"] == "chat gpt"
    assert by_index[1]["attributes"]["user.tier"] == "gold"
    assert by_index[2]["input"] == "hello world"
    assert by_index[3]["attributes"]["meta"] == {"k": ["a", {"deep": "v"}]}
    assert (by_index[4]["status"], by_index[4]["status_message"]) == ("error", "bad thing")
    assert by_index[5]["session_id"] == "sess-1"
    assert by_index[6]["attributes"]["events"] == [{"name": "retry", "attempt": "1"}]
    assert by_index[7]["tags"] == ["a", "b"]
    assert by_index[8]["model"] == "gpt-4o"
    assert all(row["attributes"]["resource"] == {"team": "ml"} for row in rows)
    assert all(row["attributes"]["otel.scope.name"] == "lib" for row in rows)
    assert counter("ingest_nul_strings_stripped_total", signal="spans") - before == 16


async def test_nul_characters_in_log_records_are_removed(migrated_database: DatabaseSettings) -> None:
    service = f"nul-logs-{new_trace_id().hex()[:8]}"
    records = [log_record(0, severity_text="WARN\x00"), log_record(1)]
    records[0].body.string_value = "disk\x00 full"
    records[1].attributes.extend(key_values({"path\x00": "/tmp\x00"}))
    body, headers = encoded(logs_request(records, service), "json")
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/logs", content=body, headers={**credential, **headers})

    assert partial(response, "json", "rejectedLogRecords") == (0, "NUL characters removed from 4 strings")
    rows = await stored_logs(migrated_database, service)
    assert [row["body"] for row in rows] == ["disk full", "line 1"]
    assert rows[1]["attributes"]["path"] == "/tmp"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_absurd_timestamps_reject_only_their_span(migrated_database: DatabaseSettings, encoding: str) -> None:
    trace_id = new_trace_id()
    spans = [span(trace_id, index) for index in range(5)]
    spans[3].end_time_unix_nano = spans[3].start_time_unix_nano - 1  # ends before it starts
    if encoding == "protobuf":  # fixed64 cannot be negative: the largest value, and 1970
        spans[1].start_time_unix_nano = spans[1].end_time_unix_nano = 2**64 - 1
        spans[2].start_time_unix_nano = 1
        body, headers = encoded(trace_request(spans), encoding)
    else:
        document = as_json(trace_request(spans))
        sent = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
        sent[1]["startTimeUnixNano"] = 1e30  # a JSON number
        sent[2]["startTimeUnixNano"] = "-5"
        sent[4]["endTimeUnixNano"] = "1e30"  # not an integer at all
        body, headers = json.dumps(document).encode(), JSON
    before = counter("ingest_records_rejected_total", signal="spans", reason="invalid_timestamp")
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/traces", content=body, headers={**credential, **headers})

    rejected, message = partial(response, encoding)
    expected_rejected = 3 if encoding == "protobuf" else 4
    assert rejected == expected_rejected
    assert TIME_RANGE in message
    assert "endTimeUnixNano is before startTimeUnixNano" in message
    stored = {int(row["span_id"], 16) - 1 for row in await stored_spans(migrated_database, trace_id.hex())}
    assert stored == ({0, 4} if encoding == "protobuf" else {0})
    after = counter("ingest_records_rejected_total", signal="spans", reason="invalid_timestamp")
    assert after - before == expected_rejected


async def test_an_absurd_log_timestamp_rejects_only_that_record(migrated_database: DatabaseSettings) -> None:
    service = f"time-logs-{new_trace_id().hex()[:8]}"
    document = as_json(logs_request([log_record(0), log_record(1)], service))
    document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1]["timeUnixNano"] = "1" + "0" * 30
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/logs", content=json.dumps(document), headers={**credential, **JSON})

    rejected, message = partial(response, "json", "rejectedLogRecords")
    assert (rejected, TIME_RANGE in message) == (1, True)
    assert [row["body"] for row in await stored_logs(migrated_database, service)] == ["line 0"]


async def test_a_token_count_that_is_not_a_number_is_dropped_counted_and_logged(
    migrated_database: DatabaseSettings,
) -> None:
    trace_id = new_trace_id()
    attributes = {"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": 7, "gen_ai.system": "openai"}
    request = trace_request([span(trace_id, 0, attributes=key_values(attributes)), span(trace_id, 1)])
    body, headers = encoded(request, "protobuf")
    before = counter("ingest_attributes_dropped_total", signal="spans", reason="invalid_value")
    with ingest_warnings() as warnings:
        async with ingest_client(migrated_database) as (client, credential):
            response = await client.post("/v1/traces", content=body, headers={**credential, **headers})

    assert partial(response, "protobuf") == (
        0,
        "1 attribute dropped: gen_ai.usage.input_tokens (input_tokens must be a whole number from 0 to 2147483647)",
    )
    rows = await stored_spans(migrated_database, trace_id.hex())
    assert len(rows) == 2
    (row,) = [row for row in rows if row["provider"] == "openai"]
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (None, 7, 7)
    assert "gen_ai.usage.input_tokens" not in row["attributes"]
    assert counter("ingest_attributes_dropped_total", signal="spans", reason="invalid_value") - before == 1
    (warning,) = warnings
    assert warning.levelname == "WARNING"
    assert warning.services == [SERVICE]  # type: ignore[attr-defined]
    assert warning.attributes_dropped == {"invalid_value": 1}  # type: ignore[attr-defined]
    assert "gen_ai.usage.input_tokens" in warning.getMessage()


async def test_protobuf_values_nested_too_deep_drop_their_attribute(migrated_database: DatabaseSettings) -> None:
    trace_id = new_trace_id()
    deep = {
        f"depth{depth}": field(9, field(1, f"depth{depth}".encode()) + field(2, nested_value(depth)))
        for depth in (
            MAX_VALUE_DEPTH,
            MAX_VALUE_DEPTH + 1,
            2000,  # past what the protobuf parser itself accepts: the span is parsed apart
        )
    }
    nested = span(trace_id, 0, attributes=key_values({"kept": "yes"})).SerializeToString() + b"".join(deep.values())
    body = raw_trace_request([nested, span(trace_id, 1).SerializeToString()])
    before = counter("ingest_attributes_dropped_total", signal="spans", reason="too_deep")
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/traces", content=body, headers={**credential, **PROTOBUF})

    rejected, message = partial(response, "protobuf")
    assert rejected == 0
    assert message.startswith("2 attributes dropped: ")
    assert f"depth{MAX_VALUE_DEPTH + 1} (nested deeper than {MAX_VALUE_DEPTH} levels)" in message
    assert "depth2000 (nested deeper than the protobuf parser allows)" in message
    rows = await stored_spans(migrated_database, trace_id.hex())
    assert len(rows) == 2
    attributes = rows[0]["attributes"]
    assert attributes["kept"] == "yes"
    assert f"depth{MAX_VALUE_DEPTH}" in attributes
    assert f"depth{MAX_VALUE_DEPTH + 1}" not in attributes and "depth2000" not in attributes
    assert counter("ingest_attributes_dropped_total", signal="spans", reason="too_deep") - before == 2


def json_nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "bottom"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


async def test_json_values_nested_too_deep_drop_their_attribute_or_refuse_the_request(
    migrated_database: DatabaseSettings,
) -> None:
    trace_id = new_trace_id()
    document = as_json(trace_request([span(trace_id, 0), span(trace_id, 1)]))
    first = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    # 100 kvlists are 400 levels of JSON: decoded, then dropped past MAX_VALUE_DEPTH.
    first["attributes"] = [{"key": "deep", "value": json_nested(100)}, {"key": "kept", "value": {"intValue": "3"}}]
    # 2,000 kvlists (8,000 levels of JSON) are past what the JSON decoder itself accepts.
    first_text = json.dumps(document)
    first["attributes"] = [{"key": "deeper", "value": "PLACEHOLDER"}]
    deepest = '{"kvlistValue":{"values":[{"key":"k","value":' * 2000 + '{"stringValue":"x"}' + "}]}}" * 2000
    second_text = json.dumps(document).replace('"PLACEHOLDER"', deepest)
    async with ingest_client(migrated_database) as (client, credential):
        answered = await client.post("/v1/traces", content=first_text, headers={**credential, **JSON})
        refused = await client.post("/v1/traces", content=second_text, headers={**credential, **JSON})

    assert partial(answered, "json") == (0, f"1 attribute dropped: deep (nested deeper than {MAX_VALUE_DEPTH} levels)")
    rows = await stored_spans(migrated_database, trace_id.hex())
    assert len(rows) == 2
    assert rows[0]["attributes"] == {"kept": 3}
    # 400 for the request, never a 500.
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "nested deeper than its decoder allows" in refused.json()["detail"]


async def test_protobuf_strings_that_are_not_utf8_lose_their_attribute_or_their_span(
    migrated_database: DatabaseSettings,
) -> None:
    trace_id = new_trace_id()
    bad_attribute = field(9, field(1, b"latin1") + field(2, field(1, b"caf\xe9")))
    with_bad_attribute = span(trace_id, 0).SerializeToString() + bad_attribute
    bad_name = span(trace_id, 1).SerializeToString() + field(5, b"\xff\xfe")  # the span's name
    body = raw_trace_request([with_bad_attribute, bad_name, span(trace_id, 2).SerializeToString()])
    before = counter("ingest_records_rejected_total", signal="spans", reason="undecodable")
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/traces", content=body, headers={**credential, **PROTOBUF})

    rejected, message = partial(response, "protobuf")
    assert rejected == 1
    assert "1 span rejected: a span is not valid protobuf" in message
    assert "1 attribute dropped: latin1 (not valid protobuf" in message
    stored = await stored_spans(migrated_database, trace_id.hex())
    assert [int(row["span_id"], 16) - 1 for row in stored] == [0, 2]
    assert "latin1" not in stored[0]["attributes"]
    assert counter("ingest_records_rejected_total", signal="spans", reason="undecodable") - before == 1


async def test_json_values_of_the_wrong_type_drop_their_attribute(migrated_database: DatabaseSettings) -> None:
    trace_id = new_trace_id()
    document = as_json(trace_request([span(trace_id, 0)]))
    sent = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    sent["attributes"] = [
        {"key": "too_big", "value": {"intValue": str(2**70)}},
        {"key": "not_an_int", "value": {"intValue": "twelve"}},
        {"key": "object_as_string", "value": {"stringValue": {"a": 1}}},
        {"key": "unknown_kind", "value": {"mapValue": {}}},
        {"key": "cost", "value": {"doubleValue": "NaN"}},
        {"key": "kept", "value": {"boolValue": True}},
    ]
    sent["name"] = {"not": "a string"}
    async with ingest_client(migrated_database) as (client, credential):
        response = await client.post("/v1/traces", content=json.dumps(document), headers={**credential, **JSON})

    rejected, message = partial(response, "json")
    assert rejected == 0
    assert message == (
        "5 attributes dropped: too_big (intValue is not a 64-bit integer), not_an_int (intValue is not a 64-bit "
        "integer), object_as_string (stringValue is not a string), unknown_kind (unknown AnyValue field 'mapValue'), "
        "name (name is not a string)"
    )
    (row,) = await stored_spans(migrated_database, trace_id.hex())
    assert row["attributes"] == {"cost": "NaN", "kept": True}
    assert row["name"] == "unnamed"
