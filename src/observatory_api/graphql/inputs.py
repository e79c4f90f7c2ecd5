"""GraphQL input types, turned into the same checked filters the REST endpoints build."""

from __future__ import annotations

from datetime import datetime

import strawberry

from observatory_api.core.errors import InvalidInput
from observatory_api.core.listing import SPAN_ONLY, ListFilters
from observatory_api.core.query import check_plain, check_span_id, check_trace_id, resolve_window
from observatory_api.core.structs import copy_fields
from observatory_api.graphql.convert import mirrored
from observatory_api.graphql.enums import Severity, SpanKind, SpanStatus
from observatory_api.logs.repository import LogFilters
from observatory_api.settings import QuerySettings


# The GraphQL filters are the list filters (core/listing.py), field for field: a filter added there
# is a GraphQL input field too. Declared here only what GraphQL types or describes otherwise.
@strawberry.input(description="The filters of `GET /api/v1/traces`; every one given must match.")
@mirrored(ListFilters, exclude=("window", *SPAN_ONLY), first=("from_", "to"), q="text")
class TraceFilter:
    from_: datetime | None = strawberry.field(default=None, name="from", description="Default: `to` minus 24 hours.")
    to: datetime | None = strawberry.field(default=None, description="Exclusive; default: now.")
    model: str | None = strawberry.field(default=None, description="Any LLM call used this model.")
    status: SpanStatus | None = None
    min_duration: float | None = strawberry.field(default=None, description="Milliseconds.")
    max_duration: float | None = strawberry.field(default=None, description="Milliseconds.")
    min_cost: float | None = strawberry.field(default=None, description="USD.")
    max_cost: float | None = strawberry.field(default=None, description="USD.")
    text: str | None = strawberry.field(
        default=None, description="Text in a prompt or completion (refused for the viewer role)."
    )


@strawberry.input(description="The trace filters plus the span's kind and trace.")
@mirrored(ListFilters, only=SPAN_ONLY)
class SpanFilter(TraceFilter):
    kind: SpanKind | None = None
    trace_id: str | None = None


@strawberry.input(description="The filters of `GET /api/v1/logs`.")
class LogFilter:
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
    severity: Severity | None = None
    trace_id: str | None = None
    span_id: str | None = None
    service: str | None = None
    text: str | None = strawberry.field(default=None, description="Text in the body (refused for the viewer role).")


# The ListFilters (and LogFilters) fields whose GraphQL input field is named otherwise.
_LIST_FILTER_NAMES = {"min_duration_ms": "min_duration", "max_duration_ms": "max_duration", "q": "text"}


def list_filters(given: TraceFilter | None, limits: QuerySettings) -> ListFilters:
    """The same checks (`ListFilters.checked`) and defaults as the REST query parameters."""
    given = given or TraceFilter()
    for name, bound in (
        ("minDuration", given.min_duration),
        ("maxDuration", given.max_duration),
        ("minCost", given.min_cost),
        ("maxCost", given.max_cost),
    ):
        if bound is not None and bound < 0:
            raise InvalidInput.field(name, "must be at least 0", "filter")
    _check_text(given.text)
    kind = trace_id = None
    if isinstance(given, SpanFilter):
        kind = given.kind.value if given.kind else None
        trace_id = check_trace_id(given.trace_id, "traceId", "filter") if given.trace_id is not None else None
    filters = copy_fields(
        ListFilters,
        given,
        renamed=_LIST_FILTER_NAMES,
        window=resolve_window(given.from_, given.to, limits),
        status=given.status.value if given.status else None,
        kind=kind,
        trace_id=trace_id,
    )
    return filters.checked("filter")


def log_filters(given: LogFilter | None) -> LogFilters:
    given = given or LogFilter()
    if given.trace_id is not None:
        check_trace_id(given.trace_id, "traceId", "filter")
    if given.span_id is not None:
        check_span_id(given.span_id, "spanId", "filter")
    check_plain(given.service, "service", "filter")
    _check_text(given.text)
    severity = given.severity.value if given.severity else None
    return copy_fields(LogFilters, given, renamed=_LIST_FILTER_NAMES, severity=severity)


def _check_text(text: str | None) -> None:
    if text is not None and not 1 <= len(text) <= 200:
        raise InvalidInput.field("text", "must be 1 to 200 characters", "filter")
