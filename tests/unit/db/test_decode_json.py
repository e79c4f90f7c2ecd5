"""Stored JSON is read with msgspec, and what msgspec refuses still reads as `json.loads` reads it."""

from __future__ import annotations

import json
import math

import pytest

from observatory_api.db.engine import decode_json


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [1.5, "x", null, true], "c": {"d": "é"}}',
        '{"big": 123456789012345678901234567890}',
        '{"huge": 1e400}',  # beyond a double: json reads inf, msgspec refuses
    ],
)
def test_decoded_as_json_loads_decodes(text: str) -> None:
    assert decode_json(text) == json.loads(text)
    assert decode_json(text.encode()) == json.loads(text)


def test_nan_written_by_json_dumps_reads_back() -> None:
    stored = json.dumps({"score": float("nan")})
    assert math.isnan(decode_json(stored)["score"])
