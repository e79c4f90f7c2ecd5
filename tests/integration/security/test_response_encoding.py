"""Response compression: zstd or gzip as accepted, none for small bodies, and a response cache
that never serves a body in an encoding the client did not accept."""

from __future__ import annotations

import gzip

import zstandard
from litestar.testing import TestClient

from observatory_api.compression import MINIMUM_SIZE
from observatory_api.settings import CacheSettings, DatabaseSettings, RedisSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.security.conftest import open_client

ROUTE = "/api/v1/models"  # cached, and well over 1 KiB


def raw_get(client: TestClient, path: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """The response's headers and its body as sent, not decoded by the client."""
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        return dict(response.headers), b"".join(response.iter_raw())


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    encoding = headers.get("content-encoding")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert encoding is None, encoding
    return body


def test_compressed_answers_decode_to_the_uncompressed_one(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(migrated_database, redis=redis_settings, cache=CacheSettings(enabled=False))
    developer = auth_headers(settings, "developer")
    with open_client(settings) as client:
        plain_headers, plain = raw_get(client, ROUTE, {**developer, "Accept-Encoding": "identity"})
        assert "content-encoding" not in plain_headers and len(plain) >= MINIMUM_SIZE
        assert "accept-encoding" in plain_headers["vary"].lower()
        for accept, expected in (("gzip", "gzip"), ("gzip, deflate, br, zstd", "zstd"), ("zstd", "zstd")):
            headers, body = raw_get(client, ROUTE, {**developer, "Accept-Encoding": accept})
            assert headers["content-encoding"] == expected
            assert len(body) < len(plain) / 3
            assert int(headers["content-length"]) == len(body)
            assert "accept-encoding" in headers["vary"].lower()
            assert decoded(headers, body) == plain


def test_small_bodies_are_not_compressed_but_still_vary(migrated_database: DatabaseSettings) -> None:
    settings = make_settings(migrated_database)
    with open_client(settings) as client:
        for accept in ("gzip", "zstd", "gzip, zstd"):
            headers, body = raw_get(client, "/alive", {"Accept-Encoding": accept})
            assert len(body) < MINIMUM_SIZE
            assert "content-encoding" not in headers
            assert "accept-encoding" in headers["vary"].lower()
            assert body.startswith(b"{")


def test_the_cache_serves_each_client_only_an_encoding_it_accepted(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = make_settings(migrated_database, redis=redis_settings, cache=CacheSettings(endpoints={ROUTE: 120}))
    developer = auth_headers(settings, "developer")
    with open_client(settings) as client:
        _, reference = raw_get(client, ROUTE, {**developer, "Accept-Encoding": "identity", "Cache-Control": "no-cache"})
        # The same URL, Accept-Encoding changing from request to request, each asked twice (miss then hit).
        sequence = [
            ("zstd", "zstd"),
            ("identity", None),
            ("gzip", "gzip"),
            ("gzip;q=0, zstd;q=0", None),
            ("br", None),
            ("zstd;q=0, gzip", "gzip"),
            ("*", "zstd"),
            ("", None),
        ]
        cache_states, etags = [], set()
        for accept, expected in sequence * 2:
            headers, body = raw_get(client, ROUTE, {**developer, "Accept-Encoding": accept})
            assert headers.get("content-encoding") == expected, (accept, headers)
            assert decoded(headers, body) == reference, accept
            assert "accept-encoding" in headers["vary"].lower()
            cache_states.append(headers["x-cache"])
            etags.add(headers["etag"])
        # Three entries: identity (stored by the reference request), zstd and gzip; every later
        # request for one of them is a hit.
        assert cache_states[:3] == ["miss", "hit", "miss"]
        assert cache_states[3:] == ["hit"] * (len(cache_states) - 3)
        assert len(etags) == 1  # weak validators of the decoded representation
