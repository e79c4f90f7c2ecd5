"""Decoding and mapping never fail with anything but a 400 or 413, whatever bytes arrive.

Each body is a valid export with a few bytes changed (a fixed seed: the same bodies every run);
what comes out must be storable on both backends: no NUL, no NaN, JSON-encodable attributes.
"""

from __future__ import annotations

import json
import random

import msgspec
import pytest

from observatory_api.ingest.limits import CancelFlag, DecodeLimits, MalformedExport, TooMuchWork
from observatory_api.ingest.report import IngestReport
from observatory_api.ingest.service import _log_records, _span_records
from tests.integration.ingest.helpers import holds_nul
from tests.integration.ingest.payloads import (
    encoded,
    key_values,
    log_record,
    logs_request,
    new_trace_id,
    span,
    trace_request,
)

LIMITS = DecodeLimits(max_resources=50, max_scopes=50, max_records=200, max_values_per_record=1000)
ATTRIBUTES = {
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.cost": 0.5,
    "gen_ai.prompt.0.content": "hi",
    "tags": ["a", 1, True, 2.5],
    "meta": {"k": {"n": [1, {"x": "y"}]}},
}


def mutations(body: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        data = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[position] = rng.randrange(256)
            elif choice < 0.75:
                del data[position : position + rng.randint(1, 8)]
            else:
                data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        out.append(bytes(data))
    return out


def storable(records: list[msgspec.Struct]) -> None:
    for record in records:
        row = msgspec.structs.astuple(record)
        assert not any(holds_nul(value) for value in row)
        for value in row:
            if isinstance(value, dict | list):
                json.dumps(value, allow_nan=False)  # what SQLite stores; PostgreSQL jsonb has no NaN either
                msgspec.json.encode(value)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("signal", ["spans", "logs"])
def test_mutated_exports_decode_or_are_refused(encoding: str, signal: str) -> None:
    rng = random.Random(f"{encoding}-{signal}")
    if signal == "spans":
        trace_id = new_trace_id()
        request = trace_request([span(trace_id, i, attributes=key_values(ATTRIBUTES)) for i in range(3)])
        decode = _span_records
    else:
        request = logs_request([log_record(i, attributes=key_values(ATTRIBUTES)) for i in range(3)])
        decode = _log_records  # type: ignore[assignment]
    body, _ = encoded(request, encoding)
    kind = "application/x-protobuf" if encoding == "protobuf" else "application/json"
    outcomes = {"decoded": 0, "refused": 0}
    for mutated in mutations(body, rng, 600):
        try:
            records = decode(mutated, kind, LIMITS, IngestReport(signal), CancelFlag())  # type: ignore[arg-type]
        except (MalformedExport, TooMuchWork):
            outcomes["refused"] += 1
            continue
        outcomes["decoded"] += 1
        storable(records)  # type: ignore[arg-type]
    assert outcomes["decoded"] > 0 and outcomes["refused"] > 0  # both paths were exercised


def _nodes(node: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _nodes(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _nodes(value, (*path, index))
    return found


def _odd_value(rng: random.Random) -> object:
    deep: object = "bottom"
    for _ in range(rng.randint(15, 60)):
        deep = rng.choice([[deep], {"k": deep}, {"kvlistValue": {"values": [{"key": "k", "value": deep}]}}])
    choices: list[object] = [
        None, 0, -1, 1e30, 2**70, 10**400, "1e30", "x\x00y", "NaN", "Infinity", True, [], {}, [1, "a"], {"a": None},
        {"stringValue": ["no"]}, {"intValue": "9" * 30}, {"doubleValue": "1.5"}, {"doubleValue": 10**400},
        {"bytesValue": "%%"}, {"arrayValue": {"values": "no"}}, {"kvlistValue": {"values": [{"key": 5}]}}, deep, "",
    ]  # fmt: skip
    return rng.choice(choices)


@pytest.mark.parametrize("signal", ["spans", "logs"])
def test_json_exports_with_odd_values_anywhere_decode_or_are_refused(signal: str) -> None:
    rng = random.Random(f"structure-{signal}")
    if signal == "spans":
        request = trace_request([span(new_trace_id(), i, attributes=key_values(ATTRIBUTES)) for i in range(2)])
        decode = _span_records
    else:
        request = logs_request([log_record(i, attributes=key_values(ATTRIBUTES)) for i in range(2)])
        decode = _log_records  # type: ignore[assignment]
    body, _ = encoded(request, "json")
    original = json.loads(body)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(600):
        document = json.loads(body)
        for _ in range(rng.randint(1, 3)):
            *parents, leaf = rng.choice(_nodes(original)[1:])
            target = document
            try:
                for step in parents:
                    target = target[step]
                target[leaf] = _odd_value(rng)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change replaced the way there
        try:
            records = decode(
                json.dumps(document).encode(), "application/json", LIMITS, IngestReport(signal), CancelFlag()
            )  # type: ignore[arg-type]
        except (MalformedExport, TooMuchWork):
            outcomes["refused"] += 1
            continue
        outcomes["decoded"] += 1
        storable(records)  # type: ignore[arg-type]
    assert outcomes["decoded"] > 0 and outcomes["refused"] > 0
