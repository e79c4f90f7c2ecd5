"""GraphQL object types for traces, spans, logs and sessions, built from the repositories' Structs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from observatory_api.core.errors import InvalidInput
from observatory_api.core.pagination import Page
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.convert import from_struct, mirrored
from observatory_api.graphql.enums import Severity, SpanKind, SpanStatus
from observatory_api.graphql.loaders import SessionTracesKey, spans_read
from observatory_api.graphql.resolver import resolver
from observatory_api.logs.schemas import LogEntry
from observatory_api.sessions.schemas import SessionSummary
from observatory_api.spans.schemas import Span as SpanStruct
from observatory_api.spans.schemas import SpanNode
from observatory_api.traces.schemas import TraceSummary

P = TypeVar("P")
# `sessions { traces }` reads up to this many traces per session: bounded, unlike `session(id)` pages.
SESSION_TRACES = 10
MAX_SESSION_TRACES = 100


@strawberry.type(description="One log record, tied to a trace and span when it has them.")
class Log:
    id: str
    timestamp: datetime
    trace_id: str | None
    span_id: str | None
    service: str
    severity: Severity
    body: str | None = strawberry.field(description="Null when `contentRedacted` (the viewer role).")
    attributes: JSON = strawberry.field(description="Without content attributes when `contentRedacted`.")
    content_redacted: bool

    @classmethod
    def of(cls, log: LogEntry) -> Log:
        severity = Severity(log.severity)
        return from_struct(
            cls, log, id=log.log_id, timestamp=log.time, severity=severity, attributes=JSON(log.attributes)
        )


@strawberry.type(description="An LLM call or another step of a trace.")
class Span:
    id: str
    trace_id: str
    parent_id: str | None
    service: str
    name: str
    kind: SpanKind
    timestamp: datetime
    end_time: datetime
    duration: float = strawberry.field(description="Milliseconds.")
    provider: str | None
    model: str | None
    model_id: str | None = strawberry.field(
        description="The canonical model, `<maker>/<family>` (`model` is the name as sent)."
    )
    input_tokens: int | None
    output_tokens: int | None
    token_count: int | None = strawberry.field(description="Total tokens.")
    cache_read_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_output_tokens: int | None
    cost: float | None = strawberry.field(description="USD.")
    cost_source: str | None = strawberry.field(
        description="Where the cost came from: instrumentation, catalogue, genai-prices, none."
    )
    time_to_first_token: float | None = strawberry.field(description="Milliseconds.")
    status: SpanStatus
    status_message: str | None = strawberry.field(description="Null when `contentRedacted` (the viewer role).")
    finish_reason: str | None
    user_id: str | None
    session_id: str | None
    environment: str | None
    tags: list[str]
    input: str | None = strawberry.field(description="Null when `contentRedacted` (the viewer role).")
    output: str | None = strawberry.field(description="Null when `contentRedacted` (the viewer role).")
    attributes: JSON = strawberry.field(
        description="Without content attributes (and content events) when `contentRedacted`."
    )
    content_redacted: bool

    @classmethod
    def of(cls, span: SpanStruct) -> Span:
        enums = {"kind": SpanKind(span.kind), "status": SpanStatus(span.status)}
        return from_struct(cls, span, id=span.span_id, **enums, tags=list(span.tags), attributes=JSON(span.attributes))

    @resolver(description="The spans whose parent is this span, in start order.")
    async def children(self, info: GraphQLInfo) -> list[Span]:
        spans = await info.context.loaders.spans_of_trace.load(self.trace_id)
        children = [Span.of(s) for s in spans if s.parent_span_id == self.id and s.span_id != self.id]
        info.context.budget.returns(len(children))
        return children

    @resolver(description="The parent span; null for a root (or when the parent is missing).")
    async def parent(self, info: GraphQLInfo) -> Span | None:
        if self.parent_id is None:
            return None
        spans = await info.context.loaders.spans_of_trace.load(self.trace_id)
        parent = next((Span.of(s) for s in spans if s.span_id == self.parent_id), None)
        info.context.budget.returns(int(parent is not None))
        return parent

    @resolver(description="The trace this span belongs to.")
    async def trace(self, info: GraphQLInfo) -> Trace | None:
        summary = await info.context.loaders.trace.load(self.trace_id)
        if summary is None:
            return None
        info.context.budget.returns(1)
        return Trace.of(summary)


@strawberry.type(description="A trace summary; `spans` and `logs` are loaded in batches.")
class Trace:
    id: str
    name: str
    service: str
    timestamp: datetime = strawberry.field(description="Start of the trace.")
    end_time: datetime
    duration: float = strawberry.field(description="Milliseconds.")
    span_count: int
    llm_call_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    token_count: int = strawberry.field(description="Total tokens of all its spans.")
    cost: float = strawberry.field(description="USD.")
    unpriced_calls: int = strawberry.field(
        description="Successful model calls without a cost (price or usage unknown): not in `cost`."
    )
    status: SpanStatus
    user_id: str | None
    session_id: str | None
    environment: str | None
    provider: str | None
    model: str | None = strawberry.field(description="The model of the first LLM call.")
    models: list[str]
    tags: list[str]
    metadata: JSON = strawberry.field(description="service, environment, user, session, tags, provider, models.")

    @classmethod
    def of(cls, summary: TraceSummary) -> Trace:
        lists = {"models": list(summary.models), "tags": list(summary.tags)}
        status = SpanStatus(summary.status)
        return from_struct(cls, summary, id=summary.trace_id, status=status, **lists, metadata=JSON(_metadata(summary)))

    @resolver(description="Every span of the trace, flat, in start order.")
    async def spans(self, info: GraphQLInfo) -> list[Span]:
        spans = await self._spans(info)
        info.context.budget.returns(len(spans))
        return [Span.of(s) for s in spans]

    @resolver(description="The root spans (no parent in the trace); walk down with `children`.")
    async def root_spans(self, info: GraphQLInfo) -> list[Span]:
        spans = await self._spans(info)
        ids = {s.span_id for s in spans}
        roots = [Span.of(s) for s in spans if s.parent_span_id is None or s.parent_span_id not in ids]
        info.context.budget.returns(len(roots))
        return roots

    @resolver(description="The trace's logs in time order.")
    async def logs(self, info: GraphQLInfo) -> list[Log]:
        logs = await info.context.loaders.logs_of_trace.load(self.id)
        info.context.budget.returns(len(logs))
        return [Log.of(entry) for entry in logs]

    async def _spans(self, info: GraphQLInfo) -> list[SpanNode]:
        # The summary says how many spans the read will bring: spend them before the read starts.
        info.context.budget.reads(self.span_count, key=spans_read(self.id))
        return await info.context.loaders.spans_of_trace.load(self.id)


def _metadata(summary: TraceSummary) -> dict[str, Any]:
    return {
        "service": summary.service_name,
        "environment": summary.environment,
        "user": summary.user_id,
        "session": summary.session_id,
        "tags": list(summary.tags),
        "provider": summary.provider,
        "models": list(summary.models),
    }


@strawberry.type(description="Traces grouped by session.")
@mirrored(SessionSummary, session_id="id")
class Session:
    id: str
    unpriced_calls: int = strawberry.field(
        description="Successful model calls without a cost (price or usage unknown): not in `cost`."
    )

    @classmethod
    def of(cls, session: SessionSummary) -> Session:
        return from_struct(cls, session, id=session.session_id)

    @resolver(
        description=f"The session's first `limit` traces, oldest first (default {SESSION_TRACES}, at most "
        f"{MAX_SESSION_TRACES}); `session(id)` pages through all of them. Loaded for all listed sessions at once."
    )
    async def traces(self, info: GraphQLInfo, limit: int = SESSION_TRACES) -> list[Trace]:
        if not 1 <= limit <= MAX_SESSION_TRACES:
            raise InvalidInput.field("limit", f"must be between 1 and {MAX_SESSION_TRACES}", "argument")
        summaries = await info.context.loaders.traces_of_session.load(SessionTracesKey(self.id, limit))
        info.context.budget.returns(len(summaries))
        return [Trace.of(t) for t in summaries]


@strawberry.type(description="A session with one page of its traces, oldest first.")
class SessionDetail(Session):
    # A stored page replaces Session's `traces` resolver: Strawberry allows it, mypy sees a method overridden.
    traces: list[Trace] = strawberry.field(  # type: ignore[assignment]
        description="This page of the traces (`limit` and `after` of `session`)."
    )
    next_cursor: str | None
    has_more: bool


@strawberry.type
class TracePage:
    items: list[Trace]
    next_cursor: str | None
    has_more: bool


@strawberry.type
class SpanPage:
    items: list[Span]
    next_cursor: str | None
    has_more: bool


@strawberry.type
class LogPage:
    items: list[Log]
    next_cursor: str | None
    has_more: bool


@strawberry.type
class SessionPage:
    items: list[Session]
    next_cursor: str | None
    has_more: bool


def page_of(info: GraphQLInfo, page_type: Callable[..., P], item: Callable[[Any], object], page: Page[Any]) -> P:
    """The GraphQL page (`TracePage`, ...) of a repository's page, each row converted by `item`; its
    rows counted against the request's budget as read and returned."""
    info.context.budget.read_and_returned(len(page.data))
    return page_type(items=[item(row) for row in page.data], next_cursor=page.next_cursor, has_more=page.has_more)
