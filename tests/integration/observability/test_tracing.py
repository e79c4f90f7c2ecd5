"""Tracing of the service itself: spans for the request, its SQL and its Redis commands reach an
OTLP/HTTP receiver on 127.0.0.1; the access line carries the same trace id."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from litestar.testing import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from observatory_api.app import create_app
from observatory_api.settings import DatabaseSettings, ObservabilitySettings, RedisSettings
from tests.conftest import auth_headers, make_settings
from tests.integration.observability.receivers import receiver

REDIS_URL = "redis://127.0.0.1:6379/0"


def _spans(requests: list[tuple[str, dict[str, str], bytes]]) -> list[tuple[str, dict[str, object], str, int]]:
    """(name, attributes, trace id, kind) of every span received."""
    spans = []
    for path, _headers, body in requests:
        assert path == "/v1/traces"
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                    spans.append((span.name, attributes, span.trace_id.hex(), span.kind))
    return spans


def test_request_sql_and_redis_spans_are_exported(tmp_path: Path) -> None:
    lines: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = lines.append  # type: ignore[method-assign]
    request_id = f"trace-{uuid.uuid4().hex[:8]}"
    try:
        with receiver() as (endpoint, received):
            settings = make_settings(
                DatabaseSettings(sqlite_path=str(tmp_path / "observatory.db")),
                # A private prefix: a response cached by another run would answer without SQL.
                redis=RedisSettings(url=REDIS_URL, key_prefix=f"obs-test-{uuid.uuid4().hex[:8]}"),
                observability=ObservabilitySettings(otlp_endpoint=endpoint),
            )
            app = create_app(settings)
            logging.getLogger().addHandler(handler)  # after create_app, which configures logging
            with TestClient(app, raise_server_exceptions=False) as client:
                client.headers.update(auth_headers(settings, "viewer"))
                assert client.get("/ready").status_code == 200
                response = client.get("/api/v1/models", headers={"X-Request-ID": request_id})
                assert response.status_code == 200
            # Leaving the client ran the lifespan's end, which flushes the queued spans.
            assert received.wait_for(1)
            spans = _spans(received.requests)
    finally:
        logging.getLogger().removeHandler(handler)

    names = [name for name, *_ in spans]
    (server,) = [span for span in spans if span[0] == "GET /api/v1/models"]
    _, attributes, trace_id, _ = server
    assert attributes["http.route"] == "/api/v1/models"
    assert attributes["observatory.request_id"] == request_id
    sql = [span for span in spans if "db.system" in span[1] or "db.system.name" in span[1]]
    assert any(span[2] == trace_id for span in sql), f"no SQL span in the request's trace: {names}"
    assert any(name.startswith(("PING", "GET", "SET", "EVAL", "INCR")) for name in names), f"no Redis span: {names}"
    # Health probes make no server span of their own (their Redis and SQL spans stand alone).
    assert not any(name.startswith("GET /ready") for name in names)
    (access,) = [r for r in lines if r.name == "observatory_api.access" and getattr(r, "request_id", "") == request_id]
    assert access.trace_id == trace_id


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    settings = make_settings(DatabaseSettings(sqlite_path=str(tmp_path / "observatory.db")))
    app = create_app(settings)
    assert app.state.tracing is None
