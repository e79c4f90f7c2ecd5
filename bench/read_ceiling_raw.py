"""The ceiling for `bench/read_ceiling.py`: a bare ASGI app on asyncpg, no framework.

    granian --interface asgi --host 127.0.0.1 --port 8001 bench.read_ceiling_raw:app
    (RAW_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/observatory_bench_read)

It answers the same routes with the same SQL shape and the same JSON as the service does for a
developer key: `GET /api/v1/spans` (50 most recent spans and a cursor), `GET /api/v1/traces/{id}`
(summary, spans as a tree, logs) and `GET /alive`. Bodies of 1 KiB or more are compressed as the
service compresses them: zstd level 3 when the client accepts zstd, else gzip level 4. There is
no authentication, validation, redaction, caching or metrics: the cost of the SQL, of decoding
the rows and of writing the JSON, and nothing else.
"""

from __future__ import annotations

import gzip
import os
from typing import Any

import asyncpg
import msgspec
import zstandard

SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, service_name, name, kind, start_time, end_time, duration_ms, "
    "provider, model, model_id, input_tokens, output_tokens, total_tokens, cache_read_input_tokens, "
    "cache_creation_input_tokens, reasoning_output_tokens, cost_usd, cost_source, time_to_first_token_ms, "
    "status, status_message, finish_reason, user_id, session_id, environment, tags, input, output, attributes"
)
SPANS_PAGE = f"SELECT {SPAN_COLUMNS} FROM spans ORDER BY start_time DESC, span_id DESC LIMIT 51"
TRACE = (
    "SELECT trace_id, name, service_name, start_time, end_time, duration_ms, span_count, llm_call_count, "
    "error_count, input_tokens, output_tokens, total_tokens, cost_usd, unpriced_calls, status, user_id, "
    "session_id, environment, provider, model, models, tags FROM traces WHERE trace_id = $1"
)
TRACE_SPANS = f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = $1 ORDER BY start_time, span_id"
TRACE_LOGS = (
    "SELECT log_id, time, trace_id, span_id, service_name, severity, body, attributes FROM logs "
    "WHERE trace_id = $1 ORDER BY time, log_id"
)
JSON_COLUMNS = {"tags", "attributes", "models"}
MIN_COMPRESS = 1024
_encoder = msgspec.json.Encoder()
_zstd = zstandard.ZstdCompressor(level=3)
_pool: asyncpg.Pool | None = None


def _row(record: asyncpg.Record) -> dict[str, Any]:
    row = dict(record)
    for column in JSON_COLUMNS & row.keys():
        value = row[column]
        row[column] = msgspec.json.decode(value) if isinstance(value, str) else value
    return row


def _span(record: asyncpg.Record) -> dict[str, Any]:
    row = _row(record)
    row["content_redacted"] = False
    return row


def _tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {span["span_id"]: span for span in spans}
    roots: list[dict[str, Any]] = []
    for span in spans:
        span["children"] = []
    for span in spans:
        parent = by_id.get(span["parent_span_id"]) if span["parent_span_id"] else None
        (parent["children"] if parent is not None else roots).append(span)
    return roots


async def _spans_page(connection: asyncpg.Connection) -> tuple[int, Any]:
    rows = [_span(record) for record in await connection.fetch(SPANS_PAGE)]
    has_more = len(rows) > 50
    rows = rows[:50]
    cursor = f"{rows[-1]['start_time'].isoformat()}|{rows[-1]['span_id']}" if has_more else None
    return 200, {"data": rows, "next_cursor": cursor, "has_more": has_more}


async def _trace(connection: asyncpg.Connection, trace_id: str) -> tuple[int, Any]:
    summary = await connection.fetchrow(TRACE, trace_id)
    if summary is None:
        return 404, {"title": "Not Found", "status": 404}
    detail = _row(summary)
    detail["spans"] = _tree([_span(record) for record in await connection.fetch(TRACE_SPANS, trace_id)])
    logs = [_row(record) for record in await connection.fetch(TRACE_LOGS, trace_id)]
    for log in logs:
        log["content_redacted"] = False
    detail["logs"] = logs
    return 200, detail


def _encode(value: Any) -> bytes:
    return _encoder.encode(value)


def _compress(body: bytes, accept_encoding: str) -> tuple[bytes, bytes | None]:
    if len(body) < MIN_COMPRESS:
        return body, None
    if "zstd" in accept_encoding:
        return _zstd.compress(body), b"zstd"
    if "gzip" in accept_encoding:
        return gzip.compress(body, compresslevel=4, mtime=0), b"gzip"
    return body, None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _pool = await asyncpg.create_pool(os.environ["RAW_DATABASE_URL"], min_size=2, max_size=10)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _pool is not None
    path: str = scope["path"].rstrip("/")
    status, document = 404, {"title": "Not Found", "status": 404}
    if path == "/alive":
        status, document = 200, {"status": "ok"}
    elif path == "/api/v1/spans":
        async with _pool.acquire() as connection:
            status, document = await _spans_page(connection)
    elif path.startswith("/api/v1/traces/"):
        async with _pool.acquire() as connection:
            status, document = await _trace(connection, path.rsplit("/", 1)[1])
    accept = b""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            accept = value
    body, encoding = _compress(_encode(document), accept.decode("latin-1"))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if encoding is not None:
        headers += [(b"content-encoding", encoding), (b"vary", b"Accept-Encoding")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
