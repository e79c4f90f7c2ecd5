"""Exports compressed as the client accepts: zstd or gzip, flushed page by page."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
import zstandard
from litestar.testing import TestClient


def raw(client: TestClient[Any], params: dict[str, Any], accept_encoding: str) -> tuple[dict[str, str], bytes]:
    """The answer's headers and its body as sent, undecoded."""
    with client.stream(
        "GET", "/api/v1/spans/export", params=params, headers={"Accept-Encoding": accept_encoding}
    ) as answer:
        assert answer.status_code == 200
        return dict(answer.headers), b"".join(answer.iter_raw())


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("zstd", "zstd"),
        ("gzip", "gzip"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip;q=0.8, zstd;q=0", "gzip"),
        ("zstd;q=0, gzip;q=0", None),
        ("identity", None),
    ],
)
def test_an_export_is_compressed_as_the_client_accepts_and_decodes_to_the_plain_rows(
    client: TestClient[Any], full_range: dict[str, str], accept_encoding: str, expected: str | None
) -> None:
    params = full_range
    plain_headers, plain = raw(client, params, "identity")
    assert "content-encoding" not in plain_headers
    assert plain.count(b"\n") > 1000  # several pages: several flushed blocks

    headers, body = raw(client, params, accept_encoding)
    assert headers.get("content-encoding") == expected
    assert "Accept-Encoding" in headers.get("vary", "")
    if expected == "zstd":
        decoded = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif expected == "gzip":
        decoded = gzip.decompress(body)
    else:
        decoded = body
    assert decoded == plain
    if expected is not None:
        assert len(body) < len(plain) / 3


def test_the_first_page_arrives_before_the_compressed_export_ends(
    client: TestClient[Any], full_range: dict[str, str]
) -> None:
    """Each page is flushed: the first chunk received decodes to whole rows on its own."""
    with client.stream("GET", "/api/v1/spans/export", params=full_range, headers={"Accept-Encoding": "zstd"}) as answer:
        first = next(answer.iter_raw())
    rows = zstandard.ZstdDecompressor().decompressobj().decompress(first)
    assert rows.count(b"\n") >= 1
