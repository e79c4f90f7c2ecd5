"""Log lines: JSON with the request id from the context, console lines, levels per module."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from observatory_api.observability.log_config import (
    ConsoleFormatter,
    JsonFormatter,
    RequestContext,
    RequestContextFilter,
    current_request_id,
    logging_config,
    request_context,
)
from observatory_api.settings import LoggingSettings


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("observatory_api.test", logging.INFO, __file__, 1, message, args or ("world",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_line_has_the_fields_and_the_request_id_of_the_context() -> None:
    token = request_context.set(RequestContext(request_id="req-123", trace_id="ab" * 16))
    try:
        record = _record(status=200, route="/api/v1/traces")
        assert RequestContextFilter().filter(record)
        assert current_request_id() == "req-123"
    finally:
        request_context.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world"
    assert line["level"] == "INFO"
    assert line["logger"] == "observatory_api.test"
    assert line["request_id"] == "req-123"
    assert line["trace_id"] == "ab" * 16
    assert line["status"] == 200
    assert line["route"] == "/api/v1/traces"
    assert isinstance(line["pid"], int)
    assert line["time"].endswith("+00:00")


def test_outside_a_request_there_is_no_request_id() -> None:
    record = _record()
    RequestContextFilter().filter(record)
    assert "request_id" not in json.loads(JsonFormatter().format(record))


def test_credential_fields_are_never_written() -> None:
    record = _record(authorization="Bearer x", password="p", api_key="k", token="t", route="/r")
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "/r"
    assert not {"authorization", "password", "api_key", "token"} & set(line)


def test_exceptions_are_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info())
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_console_format_is_readable() -> None:
    text = ConsoleFormatter().format(_record("GET %s 200", "/api/v1/traces", request_id="req-9", duration_ms=1.5))
    assert "INFO" in text
    assert "[req-9]" in text
    assert "GET /api/v1/traces 200" in text
    assert "duration_ms=1.5" in text
    assert not text.lstrip().startswith("{")


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


@pytest.mark.usefixtures("restore_logging")
def test_levels_per_module_and_the_format_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    config = logging_config(
        LoggingSettings(level="WARNING", format="json", modules={"observatory_api.noisy": "ERROR", "sql": "DEBUG"})
    )
    config.configure()
    logging.getLogger("observatory_api.other").info("dropped: below the root level")
    logging.getLogger("observatory_api.other").warning("kept")
    logging.getLogger("observatory_api.noisy").warning("dropped: module at ERROR")
    logging.getLogger("sql").debug("kept: module at DEBUG")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["kept", "kept: module at DEBUG"]
    # Litestar must not log exceptions itself: errors.py logs each unhandled one, once.
    assert config.log_exceptions == "never"


@pytest.mark.usefixtures("restore_logging")
def test_console_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging_config(LoggingSettings(level="INFO", format="console")).configure()
    logging.getLogger("observatory_api.x").info("plain text")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("INFO    observatory_api.x plain text")
