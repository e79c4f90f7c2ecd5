"""Ingest bounded in work, not only in bytes: entries are counted before they are decoded, a
record's attribute values are budgeted, and decoding stops when its request times out."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from observatory_api.settings import DatabaseSettings, ServerSettings
from tests.integration.ingest.helpers import counter, ingest_client, stored_spans
from tests.integration.ingest.payloads import (
    ENCODINGS,
    JSON,
    PROTOBUF,
    encoded,
    field,
    key_values,
    new_trace_id,
    span,
    trace_request,
)

GZIP = {"Content-Encoding": "gzip"}


def refused_by(response: object, status: int, setting: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    problem = response.json()  # type: ignore[attr-defined]
    assert f"(ingest.{setting})" in problem["detail"]
    assert problem["errors"][0]["field"] == f"ingest.{setting}"


async def test_small_gzip_bodies_that_inflate_to_millions_of_entries_are_refused_naming_the_limit(
    migrated_database: DatabaseSettings,
) -> None:
    # 10 KB of gzip, 10 MiB inflated: five million empty ResourceSpans (once ~12 CPU seconds each).
    resources = gzip.compress(b"\x0a\x00" * (5 * 1024 * 1024))
    records = gzip.compress(field(1, field(2, b"\x12\x00" * (5 * 1024 * 1024 - 16))))
    json_resources = gzip.compress(b'{"resourceSpans":[' + b",".join([b"{}"] * 3_000_000) + b"]}")
    assert max(len(resources), len(records), len(json_resources)) < 11_000
    refusals = {
        reason: counter("ingest_requests_refused_total", signal="spans", reason=reason)
        for reason in ("too_many_resources", "too_many_records")
    }
    async with ingest_client(migrated_database) as (client, credential):
        headers = {**credential, **GZIP}
        by_resources = await client.post("/v1/traces", content=resources, headers={**headers, **PROTOBUF})
        by_records = await client.post("/v1/traces", content=records, headers={**headers, **PROTOBUF})
        by_json = await client.post("/v1/traces", content=json_resources, headers={**headers, **JSON})

    refused_by(by_resources, 413, "max_resources_per_request")
    assert by_resources.json()["detail"].startswith("the export holds more than 1,000 resource entries")
    refused_by(by_records, 413, "max_records_per_request")
    refused_by(by_json, 413, "max_resources_per_request")
    after = counter("ingest_requests_refused_total", signal="spans", reason="too_many_resources")
    assert after - refusals["too_many_resources"] == 2
    after = counter("ingest_requests_refused_total", signal="spans", reason="too_many_records")
    assert after - refusals["too_many_records"] == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_each_entry_limit_refuses_one_entry_more(migrated_database: DatabaseSettings, encoding: str) -> None:
    trace_id = new_trace_id()
    three = trace_request([span(trace_id, index) for index in range(3)])
    four = trace_request([span(trace_id, index) for index in range(4)])
    two_resources = trace_request([span(trace_id, 5)])
    two_resources.resource_spans.append(trace_request([span(trace_id, 6)]).resource_spans[0])
    two_scopes = trace_request([span(trace_id, 7)])
    two_scopes.resource_spans[0].scope_spans.append(trace_request([span(trace_id, 8)]).resource_spans[0].scope_spans[0])
    limits = {"max_records_per_request": 3, "max_resources_per_request": 1, "max_scopes_per_request": 1}
    async with ingest_client(migrated_database, **limits) as (client, credential):
        answers = {}
        for name, request in (("three", three), ("four", four), ("resources", two_resources), ("scopes", two_scopes)):
            body, headers = encoded(request, encoding)
            answers[name] = await client.post("/v1/traces", content=body, headers={**credential, **headers})

    assert answers["three"].status_code == 200
    refused_by(answers["four"], 413, "max_records_per_request")
    refused_by(answers["resources"], 413, "max_resources_per_request")
    refused_by(answers["scopes"], 413, "max_scopes_per_request")
    stored = {int(row["span_id"], 16) - 1 for row in await stored_spans(migrated_database, trace_id.hex())}
    assert stored == {0, 1, 2}  # nothing of a refused request


async def test_the_decompressed_size_has_its_own_limit(migrated_database: DatabaseSettings) -> None:
    trace_id = new_trace_id()
    request = trace_request([span(trace_id, index, attributes=key_values({"n": "x" * 500})) for index in range(8)])
    body = request.SerializeToString()
    assert len(body) > 4000 and len(gzip.compress(body)) < 1000
    async with ingest_client(migrated_database, max_decompressed_bytes=4000) as (client, credential):
        headers = {**credential, **PROTOBUF, **GZIP}
        refused = await client.post("/v1/traces", content=gzip.compress(body), headers=headers)
        small = trace_request([span(trace_id, 0)]).SerializeToString()
        accepted = await client.post("/v1/traces", content=gzip.compress(small), headers=headers)

    assert refused.status_code == 413
    assert refused.json()["detail"] == "the decompressed body exceeds 4000 bytes (ingest.max_decompressed_bytes)"
    assert accepted.status_code == 200
    assert len(await stored_spans(migrated_database, trace_id.hex())) == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_values_past_a_records_budget_are_dropped_and_named(
    migrated_database: DatabaseSettings, encoding: str
) -> None:
    trace_id = new_trace_id()
    many = {f"a{index:02}": index for index in range(12)}
    long_list = {"vector": list(range(20)), "after": "kept"}
    request = trace_request(
        [span(trace_id, 0, attributes=key_values(many)), span(trace_id, 1, attributes=key_values(long_list))]
    )
    body, headers = encoded(request, encoding)
    before = counter("ingest_attributes_dropped_total", signal="spans", reason="too_many_values")
    async with ingest_client(migrated_database, max_values_per_record=10) as (client, credential):
        response = await client.post("/v1/traces", content=body, headers={**credential, **headers})

    assert response.status_code == 200
    rows = await stored_spans(migrated_database, trace_id.hex())
    assert sorted(rows[0]["attributes"]) == [f"a{index:02}" for index in range(10)]
    assert rows[1]["attributes"] == {"after": "kept"}
    assert counter("ingest_attributes_dropped_total", signal="spans", reason="too_many_values") - before == 3
    if encoding == "json":
        message = response.json()["partialSuccess"]["errorMessage"]
        assert message == (
            "3 attributes dropped: attributes past the budget (more than 10 values in one record, "
            "ingest.max_values_per_record), vector (more than 10 values in one record, ingest.max_values_per_record)"
        )


async def test_decoding_stops_when_the_request_times_out(migrated_database: DatabaseSettings) -> None:
    """The request's time limit cancels its handler; the decoding thread, which nothing can kill,
    sees the flag at its next record and stops: the counter of cancelled decodings says it did."""
    trace_id = new_trace_id()
    attributes = key_values({f"a{index}": f"v{index}" for index in range(4)})
    body = trace_request([span(trace_id, index, attributes=attributes) for index in range(50_000)]).SerializeToString()
    before = counter("ingest_requests_refused_total", signal="spans", reason="cancelled")
    server = ServerSettings(request_timeout_seconds=0.2)
    async with ingest_client(migrated_database, server=server) as (client, credential):
        response = await client.post("/v1/traces", content=body, headers={**credential, **PROTOBUF})
        assert response.status_code == 503
        assert "was cancelled" in response.json()["detail"]
        # Decoding 50,000 spans takes seconds; the thread notices the cancellation between two of
        # them and ends by raising, which the counter records (polled: the thread ends on its own).
        for _ in range(300):
            if counter("ingest_requests_refused_total", signal="spans", reason="cancelled") > before:
                break
            await asyncio.sleep(0.1)

    assert counter("ingest_requests_refused_total", signal="spans", reason="cancelled") - before == 1
    assert await stored_spans(migrated_database, trace_id.hex()) == []


async def test_json_that_is_not_an_export_is_still_a_400(migrated_database: DatabaseSettings) -> None:
    async with ingest_client(migrated_database) as (client, credential):
        headers = {**credential, **JSON}
        not_a_list = await client.post("/v1/traces", content=json.dumps({"resourceSpans": 5}), headers=headers)
        bad_scopes = await client.post(
            "/v1/logs", content=json.dumps({"resourceLogs": [{"scopeLogs": [7]}]}), headers=headers
        )

    assert not_a_list.status_code == 400
    assert bad_scopes.status_code == 400
    assert bad_scopes.headers["content-type"].startswith("application/problem+json")
