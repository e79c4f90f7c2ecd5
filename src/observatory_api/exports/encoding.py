"""Compression of an export stream, chosen from the client's `Accept-Encoding`: zstd or gzip.

Exports compress themselves (the app's compression middleware skips routes whose opt has
COMPRESSES_ITSELF): the middleware knows gzip only. Each page is flushed as it is written, so a
client decodes rows while the export runs. Parquet is compressed inside the file and is sent as is.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Literal

import zstandard

COMPRESSES_ITSELF = "compresses_itself"
Encoding = Literal["zstd", "gzip", "identity"]
# On equal quality, zstd first: it compresses these rows as well as gzip at a fraction of the CPU.
_PREFERENCE: tuple[Encoding, ...] = ("zstd", "gzip")


def choose_encoding(accept_encoding: str | None) -> Encoding:
    """The accepted encoding of highest quality (`q=0` refuses one); identity when none is."""
    qualities: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[name.strip().lower()] = quality
    wildcard = qualities.get("*", 0.0)
    best = max(_PREFERENCE, key=lambda name: qualities.get(name, wildcard))
    return best if qualities.get(best, wildcard) > 0 else "identity"


async def encoded(chunks: AsyncIterator[bytes], encoding: Encoding) -> AsyncIterator[bytes]:
    """`chunks` compressed as one stream, each chunk flushed as it comes."""
    if encoding == "identity":
        async for chunk in chunks:
            yield chunk
        return
    if encoding == "gzip":
        gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip container
        async for chunk in chunks:
            yield gzip.compress(chunk) + gzip.flush(zlib.Z_SYNC_FLUSH)
        yield gzip.flush()
        return
    zstd = zstandard.ZstdCompressor(level=3).compressobj()
    async for chunk in chunks:
        yield zstd.compress(chunk) + zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    yield zstd.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
