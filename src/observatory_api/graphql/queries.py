"""Query fields for traces, spans, logs and sessions: validate, call a repository, convert."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from observatory_api.errors import NotFound
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.enums import SessionSort, SpanSort, TraceSort
from observatory_api.graphql.inputs import LogFilter, SpanFilter, TraceFilter, list_filters, log_filters
from observatory_api.graphql.resolver import resolver
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
)
from observatory_api.listing import filters_to_node
from observatory_api.query import check_plain, check_trace_id, resolve_limit, resolve_window

LIMIT = "Page size (default 50, at most 1000)."
AFTER = "`nextCursor` of the previous page (from the matching `...Page` field)."


async def _trace_page(
    info: GraphQLInfo, filter: TraceFilter | None, limit: int | None, after: str | None, sort: TraceSort
) -> TracePage:
    ctx = info.context
    filters = list_filters(filter, ctx.settings.query)
    ctx.budget.check()
    page = await ctx.traces.list_traces(
        window=filters.window,
        filter_node=filters_to_node(filters),
        filter_fields=filters.fingerprint_fields(),
        sort=sort.value,
        limit=resolve_limit(limit, ctx.settings.query),
        cursor=after,
        allow_content=ctx.allow_content,
    )
    ctx.budget.read_and_returned(len(page.data))
    return TracePage(items=[Trace.of(t) for t in page.data], next_cursor=page.next_cursor, has_more=page.has_more)


async def _span_page(
    info: GraphQLInfo, filter: SpanFilter | None, limit: int | None, after: str | None, sort: SpanSort
) -> SpanPage:
    ctx = info.context
    filters = list_filters(filter or SpanFilter(), ctx.settings.query)
    ctx.budget.check()
    page = await ctx.spans.list_spans(
        window=filters.window,
        filter_node=filters_to_node(filters),
        filter_fields=filters.fingerprint_fields(),
        sort=sort.value,
        limit=resolve_limit(limit, ctx.settings.query),
        cursor=after,
        allow_content=ctx.allow_content,
    )
    ctx.budget.read_and_returned(len(page.data))
    return SpanPage(items=[Span.of(s) for s in page.data], next_cursor=page.next_cursor, has_more=page.has_more)


async def _log_page(info: GraphQLInfo, filter: LogFilter | None, limit: int | None, after: str | None) -> LogPage:
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
    ctx.budget.read_and_returned(len(page.data))
    return LogPage(items=[Log.of(e) for e in page.data], next_cursor=page.next_cursor, has_more=page.has_more)


@strawberry.type
class TraceQueries:
    @resolver(description="Trace summaries, newest first by default. Page with `after` (see `tracesPage`).")
    async def traces(
        self,
        info: GraphQLInfo,
        filter: TraceFilter | None = None,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        sort: TraceSort = TraceSort.START_TIME_DESC,
    ) -> list[Trace]:
        return (await _trace_page(info, filter, limit, after, sort)).items

    @resolver(description="One page of `traces` with the cursor of the next one.")
    async def traces_page(
        self,
        info: GraphQLInfo,
        filter: TraceFilter | None = None,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        sort: TraceSort = TraceSort.START_TIME_DESC,
    ) -> TracePage:
        return await _trace_page(info, filter, limit, after, sort)

    @resolver(description="One trace; null when there is none with this id.")
    async def trace(self, info: GraphQLInfo, id: str) -> Trace | None:
        summary = await info.context.loaders.trace.load(check_trace_id(id, "id", "argument"))
        if summary is None:
            return None
        info.context.budget.returns(1)
        return Trace.of(summary)

    @resolver(description="Spans across traces, newest first by default.")
    async def spans(
        self,
        info: GraphQLInfo,
        filter: SpanFilter | None = None,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        sort: SpanSort = SpanSort.START_TIME_DESC,
    ) -> list[Span]:
        return (await _span_page(info, filter, limit, after, sort)).items

    @resolver(description="One page of `spans` with the cursor of the next one.")
    async def spans_page(
        self,
        info: GraphQLInfo,
        filter: SpanFilter | None = None,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        sort: SpanSort = SpanSort.START_TIME_DESC,
    ) -> SpanPage:
        return await _span_page(info, filter, limit, after, sort)

    @resolver(description="Logs, newest first.")
    async def logs(
        self,
        info: GraphQLInfo,
        filter: LogFilter | None = None,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> list[Log]:
        return (await _log_page(info, filter, limit, after)).items

    @resolver(description="One page of `logs` with the cursor of the next one.")
    async def logs_page(
        self,
        info: GraphQLInfo,
        filter: LogFilter | None = None,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> LogPage:
        return await _log_page(info, filter, limit, after)


async def _session_page(
    info: GraphQLInfo,
    from_: datetime | None,
    to: datetime | None,
    user_id: str | None,
    environment: str | None,
    sort: SessionSort,
    limit: int | None,
    after: str | None,
) -> SessionPage:
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
    ctx.budget.read_and_returned(len(page.data))
    return SessionPage(items=[Session.of(s) for s in page.data], next_cursor=page.next_cursor, has_more=page.has_more)


FROM = strawberry.argument(name="from", description="Default: `to` minus 24 hours.")


@strawberry.type
class SessionQueries:
    @resolver(description="Sessions active in the range, most recently active first by default.")
    async def sessions(
        self,
        info: GraphQLInfo,
        from_: Annotated[datetime | None, FROM] = None,
        to: datetime | None = None,
        user_id: str | None = None,
        environment: str | None = None,
        sort: SessionSort = SessionSort.LAST_SEEN_DESC,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> list[Session]:
        return (await _session_page(info, from_, to, user_id, environment, sort, limit, after)).items

    @resolver(description="One page of `sessions` with the cursor of the next one.")
    async def sessions_page(
        self,
        info: GraphQLInfo,
        from_: Annotated[datetime | None, FROM] = None,
        to: datetime | None = None,
        user_id: str | None = None,
        environment: str | None = None,
        sort: SessionSort = SessionSort.LAST_SEEN_DESC,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> SessionPage:
        return await _session_page(info, from_, to, user_id, environment, sort, limit, after)

    @resolver(description="One session with a page of its traces, oldest first; null when absent.")
    async def session(
        self,
        info: GraphQLInfo,
        id: str,
        limit: Annotated[int | None, strawberry.argument(description=LIMIT)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
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
