"""LogController: `GET /logs`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from observatory_api.deps import IDENT, SPAN_ID, TIME_FROM, TIME_TO, TRACE_ID
from observatory_api.logs.repository import LogFilters, LogRepository
from observatory_api.logs.schemas import LogPage
from observatory_api.openapi_docs import api_responses
from observatory_api.query import check_plain, check_span_id, check_trace_id, resolve_limit, resolve_window
from observatory_api.security.permissions import content_allowed
from observatory_api.settings import Settings
from observatory_api.traces.controller import CURSOR, LIMIT

Severity = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


class LogController(Controller):
    path = "/logs"
    tags = ["logs"]

    @get("/", operation_id="list_logs", summary="List logs", responses=api_responses(), cache=True)
    async def list_logs(
        self,
        request: Request,  # type: ignore[type-arg]
        logs: NamedDependency[LogRepository],
        settings: NamedDependency[Settings],
        from_: Annotated[datetime | None, TIME_FROM] = None,
        to: Annotated[datetime | None, TIME_TO] = None,
        severity: Annotated[Severity | None, QueryParameter(required=False)] = None,
        trace_id: Annotated[str | None, TRACE_ID] = None,
        span_id: Annotated[str | None, SPAN_ID] = None,
        service: Annotated[str | None, IDENT] = None,
        q: Annotated[str | None, QueryParameter(required=False, min_length=1, max_length=200)] = None,
        limit: Annotated[int | None, LIMIT] = None,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> LogPage:
        """Logs in the time range, newest first; `q` searches the log body.

        For the viewer role, `body` and content attributes are left out, `content_redacted` is true,
        and `q` is refused.
        """
        if trace_id is not None:
            check_trace_id(trace_id, source="query")
        if span_id is not None:
            check_span_id(span_id)
        check_plain(service, "service")
        filters = LogFilters(severity=severity, trace_id=trace_id, span_id=span_id, service=service, q=q)
        return await logs.list_logs(
            window=resolve_window(from_, to, settings.query),
            filters=filters,
            limit=resolve_limit(limit, settings.query),
            cursor=cursor,
            allow_content=content_allowed(request),
        )
