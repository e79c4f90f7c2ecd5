"""The protobuf wire reader: entries counted against the limits without a parse, fields cut apart."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from observatory_api.ingest import wire
from observatory_api.ingest.limits import DecodeLimits, MalformedExport, TooMuchWork
from tests.integration.ingest.payloads import field, key_values, new_trace_id, span, trace_request

LIMITS = DecodeLimits(max_resources=2, max_scopes=3, max_records=4, max_values_per_record=100)


def export(resources: int, scopes: int, records: int) -> bytes:
    scope = field(1, b"") + b"".join(field(2, b"") for _ in range(records))
    resource = field(1, b"") + b"".join(field(2, scope) for _ in range(scopes))
    return b"".join(field(1, resource) for _ in range(resources))


def test_an_export_within_the_limits_passes() -> None:
    wire.check_entries(export(1, 1, 4), LIMITS)
    wire.check_entries(export(2, 1, 2), LIMITS)
    wire.check_entries(trace_request([span(new_trace_id(), 0)]).SerializeToString(), LIMITS)


@pytest.mark.parametrize(
    ("body", "setting"),
    [
        (export(3, 0, 0), "max_resources_per_request"),
        (export(2, 2, 0), "max_scopes_per_request"),
        (export(1, 1, 5), "max_records_per_request"),
        (export(1, 2, 3), "max_records_per_request"),
        (b"\x10\x00" * 100, "max_resources_per_request and ingest.max_scopes_per_request"),  # unknown fields
    ],
)
def test_one_entry_past_a_limit_is_refused_naming_it(body: bytes, setting: str) -> None:
    with pytest.raises(TooMuchWork) as refused:
        wire.check_entries(body, LIMITS)
    assert refused.value.setting == setting
    assert str(refused.value).endswith(f"(ingest.{setting})")


@pytest.mark.parametrize("body", [b"\x0a\x05ab", b"\x0a", b"\x0b\x00", b"\xff" * 11])
def test_a_broken_wire_format_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedExport):
        wire.check_entries(body, LIMITS)


def test_split_fields_keeps_the_rest_parseable_and_returns_the_parts() -> None:
    message = span(new_trace_id(), 0, attributes=key_values({"a": 1, "b": "two"})).SerializeToString()
    rest, apart = wire.split_fields(message, frozenset({9}))
    parsed = Span.FromString(rest)
    assert (parsed.name, len(parsed.attributes)) == ("step 0", 0)
    assert [number for number, _ in apart] == [9, 9]
    assert wire.first_string(apart[1][1], 1) == "b"
