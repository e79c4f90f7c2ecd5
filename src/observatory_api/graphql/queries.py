"""Query fields for traces, spans, logs and sessions: validate, call a repository, convert."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry

from observatory_api.core.errors import NotFound
from observatory_api.core.listing import ListFilters
from observatory_api.core.pagination import Page
from observatory_api.core.query import check_plain, check_trace_id, resolve_limit, resolve_window
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.enums import (
    LATEST_SESSIONS_FIRST,
    NEWEST_SPANS_FIRST,
    NEWEST_TRACES_FIRST,
    SessionSort,
    SpanSort,
    TraceSort,
)
from observatory_api.graphql.inputs import LogFilter, SpanFilter, TraceFilter, list_filters, log_filters
from observatory_api.graphql.resolver import list_and_page, resolver
from observatory_api.graphql.types import (
    Log,
    LogPage,
    Session,
    SessionDetail,
    SessionPage,
    Span,
    SpanPage,
    Trace,
    TracePage,
    page_of,
)

Limit = Annotated[int | None, strawberry.argument(description="Page size (default 50, at most 1000).")]
After = Annotated[
    str | None,
    strawberry.argument(description="`nextCursor` of the previous page (from the matching `...Page` field)."),
]


P = TypeVar("P", bound=Page[Any])


async def _listed(
    info: GraphQLInfo,
    list_page: Callable[..., Awaitable[P]],
    filters: ListFilters,
    sort: str,
    limit: int | None,
    after: str | None,
) -> P:
    """One page of a REST list's repository method (traces, spans), once the budget allows a read."""
    ctx = info.context
    ctx.budget.check()
    page = filters.page(resolve_limit(limit, ctx.settings.query), after)
    return await list_page(page, sort=sort, allow_content=ctx.allow_content)


async def _trace_page(
    info: GraphQLInfo,
    filter: TraceFilter | None = None,
    limit: Limit = None,
    after: After = None,
    sort: TraceSort = NEWEST_TRACES_FIRST,
) -> TracePage:
    """Trace summaries, newest first by default. Page with `after` (see `tracesPage`)."""
    filters = list_filters(filter, info.context.settings.query)
    page = await _listed(info, info.context.traces.list_traces, filters, sort.value, limit, after)
    return page_of(info, TracePage, Trace.of, page)


async def _span_page(
    info: GraphQLInfo,
    filter: SpanFilter | None = None,
    limit: Limit = None,
    after: After = None,
    sort: SpanSort = NEWEST_SPANS_FIRST,
) -> SpanPage:
    """Spans across traces, newest first by default."""
    filters = list_filters(filter or SpanFilter(), info.context.settings.query)
    page = await _listed(info, info.context.spans.list_spans, filters, sort.value, limit, after)
    return page_of(info, SpanPage, Span.of, page)


async def _log_page(
    info: GraphQLInfo, filter: LogFilter | None = None, limit: Limit = None, after: After = None
) -> LogPage:
    """Logs, newest first."""
    ctx = info.context
    filters = log_filters(filter)
    window = resolve_window(filter.from_ if filter else None, filter.to if filter else None, ctx.settings.query)
    ctx.budget.check()
    page = await ctx.logs.list_logs(
        window=window,
        filters=filters,
        limit=resolve_limit(limit, ctx.settings.query),
        cursor=after,
        allow_content=ctx.allow_content,
    )
    return page_of(info, LogPage, Log.of, page)


@strawberry.type
class TraceQueries:
    traces, traces_page = list_and_page(_trace_page, item=Trace)

    @resolver(description="One trace; null when there is none with this id.")
    async def trace(self, info: GraphQLInfo, id: str) -> Trace | None:
        summary = await info.context.loaders.trace.load(check_trace_id(id, "id", "argument"))
        if summary is None:
            return None
        info.context.budget.returns(1)
        return Trace.of(summary)

    spans, spans_page = list_and_page(_span_page, item=Span)
    logs, logs_page = list_and_page(_log_page, item=Log)


FROM = strawberry.argument(name="from", description="Default: `to` minus 24 hours.")


async def _session_page(
    info: GraphQLInfo,
    from_: Annotated[datetime | None, FROM] = None,
    to: datetime | None = None,
    user_id: str | None = None,
    environment: str | None = None,
    sort: SessionSort = LATEST_SESSIONS_FIRST,
    limit: Limit = None,
    after: After = None,
) -> SessionPage:
    """Sessions active in the range, most recently active first by default."""
    ctx = info.context
    check_plain(user_id, "userId", "argument")
    check_plain(environment, "environment", "argument")
    ctx.budget.check()
    page = await ctx.sessions.list_sessions(
        window=resolve_window(from_, to, ctx.settings.query),
        user_id=user_id,
        environment=environment,
        sort=sort.value,
        limit=resolve_limit(limit, ctx.settings.query),
        cursor=after,
    )
    return page_of(info, SessionPage, Session.of, page)


@strawberry.type
class SessionQueries:
    sessions, sessions_page = list_and_page(_session_page, item=Session)

    @resolver(description="One session with a page of its traces, oldest first; null when absent.")
    async def session(
        self,
        info: GraphQLInfo,
        id: str,
        limit: Limit = None,
        after: After = None,
    ) -> SessionDetail | None:
        ctx = info.context
        check_plain(id, "id", "argument")
        ctx.budget.check()
        try:
            detail = await ctx.sessions.get_session(id, limit=resolve_limit(limit, ctx.settings.query), cursor=after)
        except NotFound:
            return None
        ctx.budget.read_and_returned(1 + len(detail.traces))
        fields = vars(Session.of(detail))
        return SessionDetail(
            **fields,
            traces=[Trace.of(t) for t in detail.traces],
            next_cursor=detail.next_cursor,
            has_more=detail.has_more,
        )
