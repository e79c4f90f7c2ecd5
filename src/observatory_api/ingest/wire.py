"""A reader of the protobuf wire format, for what the protobuf library cannot do cheaply or at all.

Counting the entries of an export request before parsing it: the parser builds every entry
(5 million empty ResourceSpans from 10 KB of gzip took ~1 s to parse and ~4 s to walk), while
the count stops at the first entry past its limit. And cutting a message into its fields, so that
a span whose attribute the parser refuses (nested past its depth limit) loses that attribute
instead of the whole request failing.

The export requests of traces and logs share their shape: field 1 of the request holds the
resources, field 2 of a resource entry its scopes, field 2 of a scope entry its records, and
field 1 of resource and scope entries the Resource and the InstrumentationScope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from observatory_api.ingest.limits import DecodeLimits, MalformedExport, TooMuchWork

_LEN = 2
RESOURCES = SCOPES = RECORDS = 2  # the entries' field numbers inside their parents ...
ENTRIES = 1  # ... and the resources' inside the request
DESCRIPTOR = 1  # Resource in a resource entry, InstrumentationScope in a scope entry
# Fields besides the entries (the Resource, the scope, schema URLs, unknown ones): a few per entry.
_OTHER_FIELDS_PER_ENTRY = 4


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            break
    raise MalformedExport("not a protobuf message (a varint is truncated or too long)")


def fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of each field of the message in data[start:end]."""
    pos = start
    while pos < end:
        tag_start = pos
        tag = data[pos]
        if tag < 0x80:  # one-byte tags and lengths, the common case, read inline
            pos += 1
        else:
            tag, pos = _varint(data, pos, end)
        wire_type = tag & 7
        if wire_type == _LEN:
            if pos < end and data[pos] < 0x80:
                size = data[pos]
                pos += 1
            else:
                size, pos = _varint(data, pos, end)
            value_end = pos + size
        elif wire_type == 0:
            _, value_end = _varint(data, pos, end)
        elif wire_type == 1:
            value_end = pos + 8
        elif wire_type == 5:
            value_end = pos + 4
        else:  # groups (3, 4) are not part of OTLP; 6 and 7 do not exist
            raise MalformedExport(f"not an OTLP protobuf message (wire type {wire_type} at byte {tag_start})")
        if value_end > end or tag < 8:
            raise MalformedExport(f"not a protobuf message (a field at byte {tag_start} is truncated)")
        yield tag >> 3, wire_type, pos, value_end
        pos = value_end


def check_entries(body: bytes, limits: DecodeLimits) -> None:
    """Counts the resources, scopes and records of an export request without decoding them.

    Raises TooMuchWork at the first entry past its limit, before anything is parsed: the cost is
    about a microsecond per entry counted, and stops at the limit.
    """
    scopes = records = other = 0
    max_other = _OTHER_FIELDS_PER_ENTRY * (limits.max_resources + limits.max_scopes)

    def entries(wanted: int, start: int, end: int) -> Iterator[tuple[int, int]]:
        # The embedded messages numbered `wanted` in body[start:end]; every other field is counted.
        nonlocal other
        for number, wire_type, entry_start, entry_end in fields(body, start, end):
            if number == wanted and wire_type == _LEN:
                yield entry_start, entry_end
            else:
                other += 1
                if other > max_other:
                    raise _too_many_other(max_other)

    for resources, (resource_start, resource_end) in enumerate(entries(ENTRIES, 0, len(body)), start=1):
        if resources > limits.max_resources:
            raise TooMuchWork("resource entries", limits.max_resources, "max_resources_per_request")
        for scope_start, scope_end in entries(SCOPES, resource_start, resource_end):
            scopes += 1
            if scopes > limits.max_scopes:
                raise TooMuchWork("scope entries", limits.max_scopes, "max_scopes_per_request")
            for _ in entries(RECORDS, scope_start, scope_end):
                records += 1
                if records > limits.max_records:
                    raise TooMuchWork("spans or log records", limits.max_records, "max_records_per_request")


def _too_many_other(limit: int) -> TooMuchWork:
    return TooMuchWork(
        "fields besides resources, scopes and records",
        limit,
        "max_resources_per_request and ingest.max_scopes_per_request",
    )


@dataclass(slots=True)
class ScopeSlices:
    descriptor: list[bytes] = field(default_factory=list)  # the InstrumentationScope (merged when repeated)
    records: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class ResourceSlices:
    descriptor: list[bytes] = field(default_factory=list)  # the Resource (merged when repeated)
    scopes: list[ScopeSlices] = field(default_factory=list)


def _messages(body: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """The embedded messages (length-delimited fields) of body[start:end]: number, start, end."""
    for number, wire_type, message_start, message_end in fields(body, start, end):
        if wire_type == _LEN:
            yield number, message_start, message_end


def export_slices(body: bytes) -> list[ResourceSlices]:
    """The entries of an export request as bytes, each record apart (check_entries came first)."""
    resources = []
    for number, start, end in _messages(body, 0, len(body)):
        if number != ENTRIES:
            continue
        resource = ResourceSlices()
        for number2, start2, end2 in _messages(body, start, end):
            if number2 == DESCRIPTOR:
                resource.descriptor.append(body[start2:end2])
            elif number2 == SCOPES:
                scope = ScopeSlices()
                for number3, start3, end3 in _messages(body, start2, end2):
                    if number3 == DESCRIPTOR:
                        scope.descriptor.append(body[start3:end3])
                    elif number3 == RECORDS:
                        scope.records.append(body[start3:end3])
                resource.scopes.append(scope)
        resources.append(resource)
    return resources


def split_fields(message: bytes, separate: frozenset[int]) -> tuple[bytes, list[tuple[int, bytes]]]:
    """`message` without its length-delimited fields numbered in `separate`, and those fields'
    payloads in order: the rest parses on its own, each separated field can be parsed apart."""
    kept: list[bytes] = []
    apart: list[tuple[int, bytes]] = []
    field_start = 0
    for number, wire_type, start, end in fields(message, 0, len(message)):
        if number in separate and wire_type == _LEN:
            apart.append((number, message[start:end]))
        else:
            kept.append(message[field_start:end])
        field_start = end
    return b"".join(kept), apart


def first_string(message: bytes, number: int) -> str | None:
    """The text of the first length-delimited field `number` of `message` (a KeyValue's key), if readable."""
    try:
        for found, wire_type, start, end in fields(message, 0, len(message)):
            if found == number and wire_type == _LEN:
                return message[start:end].decode("utf-8", errors="replace")
    except MalformedExport:
        return None
    return None
