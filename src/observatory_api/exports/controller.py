"""ExportController: `GET /spans/export`, `/traces/export` and `/logs/export`, streamed.

Each takes its list endpoint's filters and sorts and returns every matching row, not a page:
the list's own keyset walk, so rows, filters and what a role may see are the list's. A cut
export resumes with `after=` naming the last row received.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.core.errors import InvalidInput
from observatory_api.core.listing import ListFilters
from observatory_api.core.pagination import Page
from observatory_api.core.query import HEX_SPAN_ID, HEX_TRACE_ID, check_trace_id, resolve_window
from observatory_api.db.engine import export_cache
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
            MEDIA_TYPES["parquet"]: f"A Parquet file, one row per {record}, a row group per 10,000 rows; "
            "objects as JSON text.",
        }
    )


def _export(
    route: Callable[..., HTTPRouteHandler], path: str, operation_id: str, summary: str, record: str, *problems: int
) -> HTTPRouteHandler:
    """The route decorator of an export: 200 with a stream of `record`s (`_documented`), and the
    list endpoint's problems plus `problems`."""
    responses = api_responses(*problems)
    return route(
        path,
        operation_id=operation_id,
        summary=summary,
        status_code=200,
        responses=responses,
        operation_class=_documented(record),
    )


@dataclass(frozen=True, slots=True)
class Export:
    """What every export handler takes besides its repository and filters: the request (its
    `Accept`, who asks), where the row an `after` names is looked up, and the settings."""

    request: Request  # type: ignore[type-arg]
    keys: ExportKeyRepository
    settings: Settings

    @property
    def allow_content(self) -> bool:
        return content_allowed(self.request)

    def rows_per_read(self, asked: ExportFormat | None) -> int:
        """Rows read at a time: `query.export_rows_per_read` for NDJSON and CSV (fewer round trips);
        a list page for OTLP/JSON and Parquet, whose requests and row groups are pages."""
        if choose_format(asked, self.request.headers.get("accept")) in ("ndjson", "csv"):
            return self.settings.query.export_rows_per_read
        return self.settings.query.max_page_size


def provide_export(
    request: Request,  # type: ignore[type-arg]
    primary_engine: NamedDependency[AsyncEngine],
    settings: NamedDependency[Settings],
) -> Export:
    return Export(request, ExportKeyRepository(primary_engine), settings)


class ExportController(Controller):
    path = "/"
    tags = ["export"]
    dependencies = {"export": Provide(provide_export, sync_to_thread=False)}

    @_export(get, "/spans/export", "export_spans", "Export spans", "span")
    async def export_spans(
        self,
        export: NamedDependency[Export],
        spans: NamedDependency[SpanRepository],
        span_filters: NamedDependency[ListFilters],
        sort: FromQuery[SpanSort] = "start_time",
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`trace_id:span_id` of the last span received: resume after it.")] = None,
    ) -> Stream:
        """Every span `GET /spans` would list for these filters, oldest first by default, streamed
        as NDJSON or CSV (attributes and tags as JSON). Viewers get no content, as in the list."""
        fetch = _listing(
            spans.list_spans, span_filters, sort, export.rows_per_read(format_), allow_content=export.allow_content
        )
        cursor = None
        if after is not None:
            ids = after.split(":")
            if len(ids) != 2 or not HEX_TRACE_ID.fullmatch(ids[0]) or not HEX_SPAN_ID.fullmatch(ids[1]):
                raise InvalidInput.field("after", "must be trace_id:span_id (32 and 16 hex characters)", "query")
            key = await export.keys.span_key(ids[0], ids[1], span_filters.window)
            cursor = _resume(key, sort, ("trace_id", "span_id"), span_filters.window, span_filters.fingerprint_fields())
        return await _stream(export.request, "spans", fetch, cursor, format_, Span, OtlpWriter(trace_request))

    @_export(get, "/traces/export", "export_traces", "Export trace summaries", "trace summary")
    async def export_traces(
        self,
        export: NamedDependency[Export],
        traces: NamedDependency[TraceRepository],
        list_filters: NamedDependency[ListFilters],
        sort: FromQuery[TraceSort] = "start_time",
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`trace_id` of the last trace received: resume after it.")] = None,
    ) -> Stream:
        """Every trace summary `GET /traces` would list for these filters, oldest first by default,
        streamed as NDJSON or CSV. For spans and logs of the traces, export those."""
        rows = export.rows_per_read(format_)
        fetch = _listing(traces.list_traces, list_filters, sort, rows, allow_content=export.allow_content)
        cursor = await _trace_cursor(export.keys, after, sort, list_filters.window, list_filters.fingerprint_fields())
        return await _stream_traces(export, traces, fetch, cursor, format_)

    @_export(post, "/traces/export", "export_trace_search", "Export the traces a search matches", "trace summary", 413)
    async def export_trace_search(
        self,
        export: NamedDependency[Export],
        traces: NamedDependency[TraceRepository],
        data: JSONBody[TraceSearch],
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`trace_id` of the last trace received: resume after it.")] = None,
    ) -> Stream:
        """Every trace `POST /traces/search` would return for this body (its `limit` and `cursor`
        aside), streamed as NDJSON or CSV."""
        settings, allow_content = export.settings, export.allow_content
        window = resolve_window(data.from_, data.to, settings.query, source="body")
        # One window for every page, so a resumed export continues the same walk.
        search = msgspec.structs.replace(data, from_=window.start, to=window.end, cursor=None)
        cursor = await _trace_cursor(export.keys, after, search.sort, window, {"filter": search.filter})

        async def fetch(next_cursor: str | None) -> Page[TraceSummary]:
            # A list page at a time: search_traces holds its limit to query.max_page_size.
            page = msgspec.structs.replace(search, cursor=next_cursor, limit=settings.query.max_page_size)
            return await search_traces(traces, page, limits=settings.query, allow_content=allow_content)

        return await _stream_traces(export, traces, fetch, cursor, format_)

    @_export(get, "/logs/export", "export_logs", "Export logs", "log")
    async def export_logs(
        self,
        export: NamedDependency[Export],
        logs: NamedDependency[LogRepository],
        log_query: NamedDependency[LogQuery],
        format_: Annotated[ExportFormat | None, FORMAT] = None,
        after: Annotated[str | None, _after("`log_id` of the last log received: resume after it.")] = None,
    ) -> Stream:
        """Every log `GET /logs` would list for these filters, newest first, streamed as NDJSON or
        CSV (attributes as JSON). Viewers get no bodies, as in the list."""
        allow_content = export.allow_content
        cursor = None
        if after is not None:
            if not HEX_TRACE_ID.fullmatch(after):
                raise InvalidInput.field("after", "must be a log_id (32 hexadecimal characters)", "query")
            key = await export.keys.log_key(after, log_query.window)
            fields = msgspec.structs.asdict(log_query.filters)
            cursor = _resume(key, "-time", ("log_id",), log_query.window, fields)
        rows = export.rows_per_read(format_)

        async def fetch(next_cursor: str | None) -> Page[LogEntry]:
            return await logs.list_logs(
                window=log_query.window,
                filters=log_query.filters,
                limit=rows,
                cursor=next_cursor,
                allow_content=allow_content,
            )

        return await _stream(export.request, "logs", fetch, cursor, format_, LogEntry, OtlpWriter(logs_request))


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
    export: Export, traces: TraceRepository, fetch: Fetch, cursor: str | None, asked: ExportFormat | None
) -> Stream:
    """Trace summaries; in OTLP/JSON, the spans of each page of traces (a trace is its spans)."""
    request, allow_content = export.request, export.allow_content
    if choose_format(asked, request.headers.get("accept")) != "otlp-json":
        return await _stream(request, "traces", fetch, cursor, asked, TraceSummary, None)

    async def fetch_spans(next_cursor: str | None) -> Page[Span]:
        page = await fetch(next_cursor)
        by_trace = await traces.spans_of_traces([t.trace_id for t in page.data], allow_content=allow_content)
        spans = [span for trace in page.data for span in by_trace.get(trace.trace_id, [])]
        return DerivedPage(data=spans, next_cursor=page.next_cursor, has_more=page.has_more)

    return await _stream(request, "traces", fetch_spans, cursor, asked, Span, OtlpWriter(trace_request))


def _with_export_cache(fetch: Fetch) -> Fetch:
    """Each page read on a connection with the export's small SQLite page cache (db/engine.py)."""

    async def fetch_with_export_cache(cursor: str | None) -> Page[Any]:
        with export_cache():
            return await fetch(cursor)

    return fetch_with_export_cache


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
    fetch = _with_export_cache(fetch)
    # The first page is read before the answer starts: a bad filter or cursor is still a 400.
    first = await fetch(cursor)
    # Compressed (zstd or gzip, page by page) by the app's compression middleware: compression.py.
    return Stream(
        stream_pages(first, fetch, writer),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{attachment_name(resource, fmt)}"'},
    )
