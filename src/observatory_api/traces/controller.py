"""TraceController: `GET /traces`, `GET /traces/{trace_id}`, `POST /traces/search`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, PathParameter

from observatory_api.core.listing import ListFilters
from observatory_api.core.params import CURSOR, LIMIT
from observatory_api.core.query import HEX_TRACE_ID, check_trace_id, resolve_limit
from observatory_api.openapi_docs import link
from observatory_api.operations import FIRST_TRACE, ResourceController, api_get, api_post
from observatory_api.security.permissions import content_allowed
from observatory_api.settings import Settings
from observatory_api.traces.repository import TraceRepository
from observatory_api.traces.schemas import TraceDetail, TracePage, TraceSearch, TraceSort
from observatory_api.traces.search import search_traces


class TraceController(ResourceController):
    path = "/traces"

    @api_get("/", "list_traces", "List traces", cache=True, trace=FIRST_TRACE)
    async def list_traces(
        self,
        request: Request[Any, Any, Any],
        traces: NamedDependency[TraceRepository],
        settings: NamedDependency[Settings],
        list_filters: NamedDependency[ListFilters],
        sort: FromQuery[TraceSort] = "-start_time",
        limit: Annotated[int | None, LIMIT] = None,
        cursor: Annotated[str | None, CURSOR] = None,
    ) -> TracePage:
        """Trace summaries that started in the time range, filtered, newest first by default.

        `model` matches traces that used the model in any LLM call; `q` searches prompts and
        completions. Walk the pages with `cursor` until `has_more` is false.
        """
        page = list_filters.page(resolve_limit(limit, settings.query), cursor)
        return await traces.list_traces(page, sort=sort, allow_content=content_allowed(request))

    @api_get(
        "/{trace_id:str}",
        "get_trace",
        "Get a trace with its spans and logs",
        404,
        cache=True,
        spans=link("list_spans", "The spans of this trace.", trace_id="trace_id"),
        logs=link("list_logs", "The logs of this trace.", trace_id="trace_id"),
    )
    async def get_trace(
        self,
        request: Request[Any, Any, Any],
        traces: NamedDependency[TraceRepository],
        trace_id: Annotated[str, PathParameter(schema_extra={"pattern": HEX_TRACE_ID.pattern})],
    ) -> TraceDetail:
        """The trace summary, its spans as a tree (children nested under parents) and its logs.

        For the viewer role, span `input`/`output`/`status_message`, log `body` and content attributes
        are left out and `content_redacted` is true.
        """
        return await traces.get_trace(check_trace_id(trace_id), allow_content=content_allowed(request))

    @api_post("/search", "search_traces", "Search traces with a boolean filter", 413, trace=FIRST_TRACE)
    async def search_traces(
        self,
        request: Request[Any, Any, Any],
        traces: NamedDependency[TraceRepository],
        settings: NamedDependency[Settings],
        data: JSONBody[TraceSearch],
    ) -> TracePage:
        """Traces matching a boolean filter over trace fields, span fields and span attributes.

        Example: `{"filter": {"and": [{"field": "model", "op": "eq", "value": "gpt-4o"},
        {"field": "attributes.customer.tier", "op": "in", "value": ["gold", "pro"]}]}}`.
        A span-level condition matches a trace when one of its spans matches it.
        """
        return await search_traces(traces, data, limits=settings.query, allow_content=content_allowed(request))
