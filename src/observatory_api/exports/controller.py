"""ExportController: `GET /spans/export`, `/traces/export` and `/logs/export`, streamed.

Each takes its list endpoint's filters and sorts and returns every matching row, not a page:
the list's own keyset walk, so rows, filters and what a role may see are the list's. A cut
export resumes with `after=` naming the last row received.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.errors import InvalidInput
from observatory_api.core.listing import ListFilters
from observatory_api.core.pagination import Page
from observatory_api.core.params import TRACE_ID
from observatory_api.core.query import HEX_SPAN_ID, HEX_TRACE_ID, check_trace_id, resolve_window
from observatory_api.core.vocabulary import SpanKind
from observatory_api.exports.formats import (
    MEDIA_TYPES,
    ExportFormat,
    OtlpWriter,
    PageWriter,
    RowWriter,
    attachment_name,
    choose_format,
)
from observatory_api.exports.otlp import logs_request, trace_request
from observatory_api.exports.paging import DerivedPage, Fetch, resume_cursor, stream_pages
from observatory_api.exports.parquet import ParquetPageWriter
from observatory_api.exports.repository import ExportKeyRepository
from observatory_api.logs.repository import LogQuery, LogRepository
from observatory_api.logs.schemas import LogEntry
from observatory_api.openapi_docs import api_responses, streamed
from observatory_api.security.permissions import content_allowed
from observatory_api.settings import Settings
from observatory_api.spans.repository import SpanRepository, SpanSort
from observatory_api.spans.schemas import Span
from observatory_api.traces.repository import TraceRepository
from observatory_api.traces.schemas import TraceSearch, TraceSort, TraceSummary
from observatory_api.traces.search import search_traces

FORMAT = QueryParameter(
    name="format",
    required=False,
    description="`ndjson`, `csv`, `otlp-json` (OTLP/JSON export requests, one per line, that "
    "`/v1/traces` or `/v1/logs` take back) or `parquet` (with the server's `[parquet]` extra); "
    "default from `Accept` (`text/csv`, `application/vnd.apache.parquet`), else NDJSON.",
)
_SORT_KEYS = {"start_time": "start_time", "duration": "duration_ms", "cost": "cost_usd"}


def _after(description: str) -> Any:
    return QueryParameter(required=False, max_length=100, description=description)


def _documented(record: str) -> Any:
    return streamed(
        {
            MEDIA_TYPES["ndjson"]: f"One JSON object per line: a {record}, as its list endpoint returns it "
            "(with `format=otlp-json`: one OTLP/JSON export request per line).",
            MEDIA_TYPES["csv"]: f"A header row, then one row per {record}; objects and lists as JSON text.",
            MEDIA_TYPES["parquet"]: f"A Parquet file, one row per {record}, a row group per 1,000 rows; "
            "objects as JSON text.",
        }
    )


def provide_export_keys(primary_engine: NamedDependency[AsyncEngine]) -> ExportKeyRepository:
    return ExportKeyRepository(primary_engine)


class ExportController(Controller):
    path = "/"
    tags = ["export"]
    dependencies = {"export_keys": Provide(provide_export_keys, sync_to_thread=False)}

    @get(
        "/spans/export",
        operation_id="export_spans",
        summary="Export spans",
        responses=api_responses(),
        operation_class=_documented("span"),
    )
    async def export_spans(
        self,
        request: Request,  # type: ignore[type-arg]
        spans: NamedDependency[SpanRepository],
        export_keys: NamedDependency[ExportKeyRepository],
        settings: NamedDependency[Settings],
        list_filters: NamedDependency[ListFilters],
        kind: Annotated[SpanKind | None, QueryParameter(required=False)] = None,
        trace_id: Annotated[str | None, TRACE_ID] = None,
        sort: FromQuery[SpanSort] = "start_time",
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`trace_id:span_id` of the last span received: resume after it.")] = None,
    ) -> Stream:
        """Every span `GET /spans` would list for these filters, oldest first by default, streamed
        as NDJSON or CSV (attributes and tags as JSON). Viewers get no content, as in the list."""
        if trace_id is not None:
            check_trace_id(trace_id, source="query")
        filters = msgspec.structs.replace(list_filters, kind=kind, trace_id=trace_id)
        rows = _rows_per_read(request, format_, settings)
        fetch = _listing(spans.list_spans, filters, sort, rows, allow_content=content_allowed(request))
        cursor = None
        if after is not None:
            ids = after.split(":")
            if len(ids) != 2 or not HEX_TRACE_ID.fullmatch(ids[0]) or not HEX_SPAN_ID.fullmatch(ids[1]):
                raise InvalidInput.field("after", "must be trace_id:span_id (32 and 16 hex characters)", "query")
            key = await export_keys.span_key(ids[0], ids[1], filters.window)
            cursor = _resume(key, sort, ("trace_id", "span_id"), filters.window, filters.fingerprint_fields())
        return await _stream(request, "spans", fetch, cursor, format_, Span, OtlpWriter(trace_request))

    @get(
        "/traces/export",
        operation_id="export_traces",
        summary="Export trace summaries",
        responses=api_responses(),
        operation_class=_documented("trace summary"),
    )
    async def export_traces(
        self,
        request: Request,  # type: ignore[type-arg]
        traces: NamedDependency[TraceRepository],
        export_keys: NamedDependency[ExportKeyRepository],
        settings: NamedDependency[Settings],
        list_filters: NamedDependency[ListFilters],
        sort: FromQuery[TraceSort] = "start_time",
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`trace_id` of the last trace received: resume after it.")] = None,
    ) -> Stream:
        """Every trace summary `GET /traces` would list for these filters, oldest first by default,
        streamed as NDJSON or CSV. For spans and logs of the traces, export those."""
        allow_content = content_allowed(request)
        rows = _rows_per_read(request, format_, settings)
        fetch = _listing(traces.list_traces, list_filters, sort, rows, allow_content=allow_content)
        cursor = await _trace_cursor(export_keys, after, sort, list_filters.window, list_filters.fingerprint_fields())
        return await _stream_traces(request, traces, fetch, cursor, format_, allow_content)

    @post(
        "/traces/export",
        operation_id="export_trace_search",
        summary="Export the traces a search matches",
        status_code=200,
        responses=api_responses(413),
        operation_class=_documented("trace summary"),
    )
    async def export_trace_search(
        self,
        request: Request,  # type: ignore[type-arg]
        traces: NamedDependency[TraceRepository],
        export_keys: NamedDependency[ExportKeyRepository],
        settings: NamedDependency[Settings],
        data: JSONBody[TraceSearch],
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`trace_id` of the last trace received: resume after it.")] = None,
    ) -> Stream:
        """Every trace `POST /traces/search` would return for this body (its `limit` and `cursor`
        aside), streamed as NDJSON or CSV."""
        window = resolve_window(data.from_, data.to, settings.query, source="body")
        # One window for every page, so a resumed export continues the same walk.
        search = msgspec.structs.replace(data, from_=window.start, to=window.end, cursor=None)
        cursor = await _trace_cursor(export_keys, after, search.sort, window, {"filter": search.filter})
        allow_content = content_allowed(request)

        async def fetch(next_cursor: str | None) -> Page[TraceSummary]:
            # A list page at a time: search_traces holds its limit to query.max_page_size.
            page = msgspec.structs.replace(search, cursor=next_cursor, limit=settings.query.max_page_size)
            return await search_traces(traces, page, limits=settings.query, allow_content=allow_content)

        return await _stream_traces(request, traces, fetch, cursor, format_, allow_content)

    @get(
        "/logs/export",
        operation_id="export_logs",
        summary="Export logs",
        responses=api_responses(),
        operation_class=_documented("log"),
    )
    async def export_logs(
        self,
        request: Request,  # type: ignore[type-arg]
        logs: NamedDependency[LogRepository],
        export_keys: NamedDependency[ExportKeyRepository],
        settings: NamedDependency[Settings],
        log_query: NamedDependency[LogQuery],
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`log_id` of the last log received: resume after it.")] = None,
    ) -> Stream:
        """Every log `GET /logs` would list for these filters, newest first, streamed as NDJSON or
        CSV (attributes as JSON). Viewers get no bodies, as in the list."""
        allow_content = content_allowed(request)
        cursor = None
        if after is not None:
            if not HEX_TRACE_ID.fullmatch(after):
                raise InvalidInput.field("after", "must be a log_id (32 hexadecimal characters)", "query")
            key = await export_keys.log_key(after, log_query.window)
            fields = msgspec.structs.asdict(log_query.filters)
            cursor = _resume(key, "-time", ("log_id",), log_query.window, fields)
        rows = _rows_per_read(request, format_, settings)

        async def fetch(next_cursor: str | None) -> Page[LogEntry]:
            return await logs.list_logs(
                window=log_query.window,
                filters=log_query.filters,
                limit=rows,
                cursor=next_cursor,
                allow_content=allow_content,
            )

        return await _stream(request, "logs", fetch, cursor, format_, LogEntry, OtlpWriter(logs_request))


def _rows_per_read(
    request: Request,  # type: ignore[type-arg]
    asked: ExportFormat | None,
    settings: Settings,
) -> int:
    """Rows read at a time: `query.export_rows_per_read` for NDJSON and CSV (fewer round trips);
    a list page for OTLP/JSON and Parquet, whose requests and row groups are pages."""
    if choose_format(asked, request.headers.get("accept")) in ("ndjson", "csv"):
        return settings.query.export_rows_per_read
    return settings.query.max_page_size


def _listing(
    list_page: Callable[..., Awaitable[Page[Any]]],
    filters: ListFilters,
    sort: str,
    rows: int,
    *,
    allow_content: bool,
) -> Fetch:
    """The pages of a list endpoint's repository method (spans, traces) for these filters and
    sort, `rows` at a time."""
    first = filters.page(rows, None)

    async def fetch(next_cursor: str | None) -> Page[Any]:
        page = msgspec.structs.replace(first, cursor=next_cursor)
        return await list_page(page, sort=sort, allow_content=allow_content)

    return fetch


async def _trace_cursor(
    export_keys: ExportKeyRepository, after: str | None, sort: str, window: Any, filters: dict[str, Any]
) -> str | None:
    """The cursor that resumes a trace export after the trace `after` names (None: from the start)."""
    if after is None:
        return None
    check_trace_id(after, field="after", source="query")
    key = await export_keys.trace_key(after)
    return _resume(key, sort, ("trace_id",), window, filters)


def _resume(key: dict[str, Any] | None, sort: str, ids: tuple[str, ...], window: Any, filters: dict[str, Any]) -> str:
    if key is None:
        raise InvalidInput.field("after", "names no row in this export's time range", "query")
    first = "time" if sort == "-time" else _SORT_KEYS[sort.lstrip("-")]
    return resume_cursor(sort=sort, key_names=(first, *ids), key=key, window=window, filters=filters)


async def _stream_traces(
    request: Request,  # type: ignore[type-arg]
    traces: TraceRepository,
    fetch: Fetch,
    cursor: str | None,
    asked: ExportFormat | None,
    allow_content: bool,
) -> Stream:
    """Trace summaries; in OTLP/JSON, the spans of each page of traces (a trace is its spans)."""
    if choose_format(asked, request.headers.get("accept")) != "otlp-json":
        return await _stream(request, "traces", fetch, cursor, asked, TraceSummary, None)

    async def fetch_spans(next_cursor: str | None) -> Page[Span]:
        page = await fetch(next_cursor)
        by_trace = await traces.spans_of_traces([t.trace_id for t in page.data], allow_content=allow_content)
        spans = [span for trace in page.data for span in by_trace.get(trace.trace_id, [])]
        return DerivedPage(data=spans, next_cursor=page.next_cursor, has_more=page.has_more)

    return await _stream(request, "traces", fetch_spans, cursor, asked, Span, OtlpWriter(trace_request))


async def _stream(
    request: Request,  # type: ignore[type-arg]
    resource: str,
    fetch: Fetch,
    cursor: str | None,
    asked: ExportFormat | None,
    record: type[msgspec.Struct],
    otlp: OtlpWriter | None,
) -> Stream:
    fmt = choose_format(asked, request.headers.get("accept"))
    writer: PageWriter
    if fmt == "otlp-json":
        if otlp is None:  # pragma: no cover - every resource has an OTLP form
            raise InvalidInput.field("format", f"{resource} have no OTLP form", "query")
        writer = otlp
    elif fmt == "parquet":
        writer = ParquetPageWriter(record)
    else:
        writer = RowWriter(fmt, record.__struct_fields__)
    # The first page is read before the answer starts: a bad filter or cursor is still a 400.
    first = await fetch(cursor)
    # Compressed (zstd or gzip, page by page) by the app's compression middleware: compression.py.
    return Stream(
        stream_pages(first, fetch, writer),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{attachment_name(resource, fmt)}"'},
    )
