"""Which encoding an `Accept-Encoding` value gets (the cache key and the middleware share it)."""

from __future__ import annotations

import pytest

from observatory_api.compression import negotiate


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", "identity"),
        ("identity", "identity"),
        ("gzip", "gzip"),
        ("gzip, deflate", "gzip"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("ZSTD", "zstd"),
        ("zstd;q=0, gzip", "gzip"),
        ("gzip;q=0", "identity"),
        ("gzip; q=0.0, zstd;q=0", "identity"),
        ("gzip;q=0.5", "gzip"),
        ("br", "identity"),
        ("*", "zstd"),
        ("*, zstd;q=0", "gzip"),
        ("gzip;q=bogus", "identity"),
        ("xgzipx, zstdx", "identity"),  # a substring is not a coding
    ],
)
def test_negotiate(accept: str, expected: str) -> None:
    assert negotiate(accept) == expected
