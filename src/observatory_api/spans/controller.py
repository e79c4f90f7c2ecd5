"""SpanController: `GET /spans`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import FromQuery

from observatory_api.core.listing import ListFilters
from observatory_api.core.params import CURSOR, LIMIT
from observatory_api.core.query import resolve_limit
from observatory_api.operations import FIRST_SPAN_TRACE, ResourceController, api_get
from observatory_api.security.permissions import content_allowed
from observatory_api.settings import Settings
from observatory_api.spans.repository import SpanRepository, SpanSort
from observatory_api.spans.schemas import SpanPage


class SpanController(ResourceController):
    path = "/spans"

    @api_get("/", "list_spans", "List spans", cache=True, trace=FIRST_SPAN_TRACE)
    async def list_spans(
        self,
        request: Request[Any, Any, Any],
        spans: NamedDependency[SpanRepository],
        settings: NamedDependency[Settings],
        span_filters: NamedDependency[ListFilters],
        sort: FromQuery[SpanSort] = "-start_time",
        limit: Annotated[int | None, LIMIT] = None,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> SpanPage:
        """Spans that started in the time range, with the trace filters plus `kind` and `trace_id`.

        For the viewer role, `input`, `output`, `status_message` and content attributes are left out,
        `content_redacted` is true, and `q` is refused.
        """
        page = span_filters.page(resolve_limit(limit, settings.query), cursor)
        return await spans.list_spans(page, sort=sort, allow_content=content_allowed(request))
