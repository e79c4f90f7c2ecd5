"""Logging: one JSON object per line (or readable console lines in development), with the request id.

The request id (and, when tracing is on, the trace id) of the request being served lives in a
context variable set by the observability middleware, so every line logged while serving it carries
them, whichever module logs. Records are formatted and written by a plain stream handler: one small
write per line, no extra thread per app.
"""

from __future__ import annotations

import json
import logging
import traceback
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar.logging.config import LoggingConfig

from observatory_api.settings import LoggingSettings


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    trace_id: str | None = None


request_context: ContextVar[RequestContext | None] = ContextVar("observatory_request_context", default=None)


def current_request_id() -> str | None:
    context = request_context.get()
    return context.request_id if context else None


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Never written, whatever a caller passes in `extra=`.
_FORBIDDEN_FIELDS = frozenset({"authorization", "password", "token", "api_key", "x-api-key", "cookie", "secret"})


class RequestContextFilter(logging.Filter):
    """Copies the request id (and trace id) of the current request onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context.get()
        if context is not None:
            if getattr(record, "request_id", None) is None:
                record.request_id = context.request_id
            if context.trace_id and getattr(record, "trace_id", None) is None:
                record.trace_id = context.trace_id
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and key.lower() not in _FORBIDDEN_FIELDS
    }


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "pid", "request_id"?, ...extra fields, "exception"?}`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            # Which granian worker wrote the line.
            "pid": record.process,
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`12:00:01.123 INFO  observatory_api.access [req-id] GET /api/v1/traces 200 (duration_ms=3.1 ...)`."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = _fields(record)
        request_id = fields.pop("request_id", None)
        text = f"{time} {record.levelname:<7} {record.name}"
        if request_id:
            text += f" [{request_id}]"
        text += f" {record.getMessage()}"
        if fields:
            text += " (" + " ".join(f"{key}={value}" for key, value in fields.items()) + ")"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return text


def logging_config(settings: LoggingSettings) -> LoggingConfig:
    """Litestar's LoggingConfig for the service.

    `log_exceptions="never"`: errors.py logs every unhandled error once, with the request id; letting
    Litestar log too would print each 500 twice and every 401/404/429 with a traceback.
    """
    formatter = "json" if settings.format == "json" else "console"
    handlers: dict[str, dict[str, Any]] = {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": formatter,
            "filters": ["request_context"],
        },
        # Litestar adds a queue handler (one listener thread per configuration) unless the name is taken.
        "queue_listener": {"class": "logging.NullHandler"},
    }
    loggers: dict[str, dict[str, Any]] = {
        # Propagate to the root handler, so there is one handler and one format for everything.
        "litestar": {"level": settings.level, "handlers": [], "propagate": True},
    }
    for module, level in settings.modules.items():
        loggers[module] = {"level": level, "propagate": True}
    return LoggingConfig(
        formatters={
            "json": {"()": f"{__name__}.JsonFormatter"},
            "console": {"()": f"{__name__}.ConsoleFormatter"},
        },
        filters={"request_context": {"()": f"{__name__}.RequestContextFilter"}},
        handlers=handlers,
        loggers=loggers,
        root={"handlers": ["console"], "level": settings.level},
        log_exceptions="never",
        disable_existing_loggers=False,
    )
