"""An OTLP/HTTP receiver that keeps every export as OTLP JSON, for captures.

It answers `/v1/traces`, `/v1/logs` and `/v1/metrics` as a collector does (200 with an empty
response in the request's encoding) and keeps each request decoded to the proto3 JSON form the
app's ingest accepts (hex ids), with the headers that came with it (the API key masked).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.instrumentations.fake_openai import QuietServer

SIGNALS = {
    "/v1/traces": ("traces", ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": ("logs", ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": ("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}
_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_KEPT_HEADERS = ("content-type", "content-encoding", "user-agent")


def hex_ids(node: Any) -> Any:
    """protobuf's JSON mapping writes bytes as base64; OTLP JSON wants trace and span ids in hex."""
    if isinstance(node, dict):
        return {
            key: (base64.b64decode(value).hex() if key in _ID_KEYS and isinstance(value, str) else hex_ids(value))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [hex_ids(item) for item in node]
    return node


def to_otlp_json(message: Any) -> dict[str, Any]:
    return hex_ids(MessageToDict(message))  # type: ignore[no-any-return]


class OtlpRecorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # {"signal", "headers", "body"}
        self._lock = threading.Lock()
        self._server: QuietServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @contextmanager
    def running(self) -> Iterator[OtlpRecorder]:
        handler = type("Handler", (_Handler,), {"recorder": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=self._server.serve_forever, name="otlp-recorder", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self.requests = self.requests, []
            return taken

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)


class _Handler(BaseHTTPRequestHandler):
    recorder: OtlpRecorder
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        signal = SIGNALS.get(self.path.split("?")[0].rstrip("/"))
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if signal is None:
            self._answer(404, b"", "text/plain")
            return
        name, request_type, response_type = signal
        if self.headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        is_json = self.headers.get("content-type", "").startswith("application/json")
        decoded = json.loads(raw) if is_json else None
        message = ParseDict(hex_to_base64(decoded), request_type()) if is_json else request_type.FromString(raw)
        headers = {key: self.headers[key] for key in _KEPT_HEADERS if self.headers.get(key)}
        headers["auth"] = (
            "x-api-key"
            if self.headers.get("x-api-key")
            else ("bearer" if self.headers.get("authorization") else "none")
        )
        self.recorder.add({"signal": name, "headers": headers, "body": to_otlp_json(message)})
        if is_json:
            self._answer(200, b"{}", "application/json")
        else:
            self._answer(200, response_type().SerializeToString(), "application/x-protobuf")

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def hex_to_base64(node: Any) -> Any:
    """The inverse of `hex_ids`, for feeding OTLP JSON to protobuf's parser."""
    if isinstance(node, dict):
        return {
            key: (
                base64.b64encode(bytes.fromhex(value)).decode()
                if key in _ID_KEYS and isinstance(value, str)
                else hex_to_base64(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [hex_to_base64(item) for item in node]
    return node
