"""LogController: `GET /logs`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency

from observatory_api.core.params import CURSOR, LIMIT
from observatory_api.core.query import resolve_limit
from observatory_api.logs.repository import LogQuery, LogRepository
from observatory_api.logs.schemas import LogPage
from observatory_api.operations import ResourceController, api_get
from observatory_api.security.permissions import content_allowed
from observatory_api.settings import Settings


class LogController(ResourceController):
    path = "/logs"

    @api_get("/", "list_logs", "List logs", cache=True)
    async def list_logs(
        self,
        request: Request[Any, Any, Any],
        logs: NamedDependency[LogRepository],
        settings: NamedDependency[Settings],
        log_query: NamedDependency[LogQuery],
        limit: Annotated[int | None, LIMIT] = None,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> LogPage:
        """Logs in the time range, newest first; `q` searches the log body.

        For the viewer role, `body` and content attributes are left out, `content_redacted` is true,
        and `q` is refused.
        """
        return await logs.list_logs(
            window=log_query.window,
            filters=log_query.filters,
            limit=resolve_limit(limit, settings.query),
            cursor=cursor,
            allow_content=content_allowed(request),
        )
