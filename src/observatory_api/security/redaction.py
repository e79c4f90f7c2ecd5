"""What a role without `read_content` sees: span input/output and log bodies omitted, with a marker."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.connection import ASGIConnection

from observatory_api.errors import InvalidInput
from observatory_api.logs.schemas import LogEntry
from observatory_api.security.permissions import content_allowed
from observatory_api.spans.schemas import Span


def redact_spans(spans: Iterable[Span]) -> None:
    for span in spans:
        span.input = None
        span.output = None
        span.content_redacted = True
        redact_spans(getattr(span, "children", ()))


def redact_logs(logs: Iterable[LogEntry]) -> None:
    for log in logs:
        log.body = None
        log.content_redacted = True


def refuse_content_search(connection: ASGIConnection[Any, Any, Any, Any], q: str | None, what: str) -> None:
    """A role without content access cannot find records by their text either (400, like the filters)."""
    if q is not None and not content_allowed(connection):
        raise InvalidInput.field("q", f"your role may not search {what}", "query")
