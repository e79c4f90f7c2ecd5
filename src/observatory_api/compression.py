"""Response compression: zstd level 3 when the client accepts it, else gzip level 4; none under 1 KiB.

Litestar's CompressionConfig defaults to gzip level 9, which cost a spans page 3-4x the CPU of
producing it (bench/RESULTS.md, "Reads against a raw handler"). zstd at level 3 compresses as
well as gzip 9 at a fraction of the CPU; gzip 4 is most of gzip 9's ratio for a third of its
time. Exports (streamed, read by machines, often large) keep gzip 6.

`negotiate` is the single decision of which encoding a request gets: the compression middleware
and the response cache key both use it, so a cached body is only ever served in the encoding it
was stored in.
"""

from __future__ import annotations

import dataclasses
from io import BytesIO
from typing import TYPE_CHECKING, Literal

import zstandard
from litestar.config.compression import CompressionConfig
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.middleware.compression import CompressionMiddleware
from litestar.middleware.compression.facade import CompressionFacade

if TYPE_CHECKING:
    from litestar.enums import CompressionEncoding
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

Encoding = Literal["zstd", "gzip", "identity"]
MINIMUM_SIZE = 1024
ZSTD_LEVEL = 3
GZIP_LEVEL = 4
EXPORT_GZIP_LEVEL = 6
# Preference when a client accepts several (q-values aside): zstd is cheapest for the same size.
_PREFERENCE: tuple[Encoding, ...] = ("zstd", "gzip")


def negotiate(accept_encoding: str) -> Encoding:
    """The encoding an `Accept-Encoding` value gets: zstd, else gzip, else identity. `q=0` refuses
    a coding; `*` accepts the ones not named."""
    accepted: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, parameters = item.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding.strip():
            accepted[coding.strip()] = quality
    for coding in _PREFERENCE:
        if accepted.get(coding, accepted.get("*", 0.0)) > 0:
            return coding
    return "identity"


class ZstdCompression(CompressionFacade):
    """A Litestar compression facade for zstd; one compressor per response (zstandard's
    compressors must not be shared by interleaved streams)."""

    __slots__ = ("buffer", "compressor")

    encoding = "zstd"

    def __init__(self, buffer: BytesIO, compression_encoding: CompressionEncoding | str, config: CompressionConfig):
        self.buffer = buffer
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def write(self, body: bytes) -> None:
        self.buffer.write(self.compressor.compress(body))
        self.buffer.write(self.compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def close(self) -> None:
        self.buffer.write(self.compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))


class NegotiatedCompressionMiddleware(CompressionMiddleware):
    """Litestar's compression with `negotiate` choosing the coding (Litestar's own test is a
    substring match, blind to `q=0`), export routes at gzip 6, and `Vary: Accept-Encoding` on
    every response, compressed or not (a shared cache must not hand either form to the other)."""

    def __init__(self, app: ASGIApp, config: CompressionConfig) -> None:
        super().__init__(app, config)
        self._exports = CompressionMiddleware(app, dataclasses.replace(config, gzip_compress_level=EXPORT_GZIP_LEVEL))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoding = negotiate(Headers.from_scope(scope).get("accept-encoding", ""))
        send = _with_vary(send)
        if encoding == "identity":
            await self.app(scope, receive, send)
            return
        exporting = str(scope.get("path_template") or scope.get("path", "")).endswith("/export")
        owner = self._exports if exporting else self
        await self.app(scope, receive, owner.create_compression_send_wrapper(send, encoding, scope))


def _with_vary(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableScopeHeaders(message)
            if "accept-encoding" not in headers.get("vary", "").lower():
                headers.extend_header_value("vary", "Accept-Encoding")
        await send(message)

    return sending


def compression_config() -> CompressionConfig:
    return CompressionConfig(
        backend="zstd",
        compression_facade=ZstdCompression,
        gzip_fallback=True,
        gzip_compress_level=GZIP_LEVEL,
        minimum_size=MINIMUM_SIZE,
        middleware_class=NegotiatedCompressionMiddleware,
    )
