"""The list filters of `GET /traces` as query parameters, checked. `GET /spans` takes them too
(spans/params.py adds the span-only ones), and so do the two exports; GraphQL's `TraceFilter`
mirrors the same `ListFilters` (graphql/inputs.py). A new trace filter is a field of
`core/listing.py` and a parameter here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import QueryParameter

from observatory_api.core.listing import ListFilters
from observatory_api.core.params import IDENT, NON_NEGATIVE, TIME_FROM, TIME_TO
from observatory_api.core.query import resolve_window
from observatory_api.core.vocabulary import SpanStatus
from observatory_api.settings import Settings


def provide_list_filters(
    settings: NamedDependency[Settings],
    from_: Annotated[datetime | None, TIME_FROM] = None,
    to: Annotated[datetime | None, TIME_TO] = None,
    service: Annotated[str | None, IDENT] = None,
    model: Annotated[
        str | None, QueryParameter(required=False, max_length=200, description="Model name, e.g. gpt-4o.")
    ] = None,
    provider: Annotated[str | None, IDENT] = None,
    status: Annotated[SpanStatus | None, QueryParameter(required=False)] = None,
    user_id: Annotated[str | None, IDENT] = None,
    session_id: Annotated[str | None, IDENT] = None,
    environment: Annotated[str | None, IDENT] = None,
    tag: Annotated[str | None, IDENT] = None,
    min_duration_ms: Annotated[float | None, NON_NEGATIVE] = None,
    max_duration_ms: Annotated[float | None, NON_NEGATIVE] = None,
    min_cost: Annotated[float | None, NON_NEGATIVE] = None,
    max_cost: Annotated[float | None, NON_NEGATIVE] = None,
    q: Annotated[
        str | None,
        QueryParameter(required=False, min_length=1, max_length=200, description="Text in the prompt or completion."),
    ] = None,
) -> ListFilters:
    """The filters shared by `GET /traces` and `GET /spans`, with the time range checked."""
    return ListFilters(
        window=resolve_window(from_, to, settings.query),
        service=service,
        model=model,
        provider=provider,
        status=status,
        user_id=user_id,
        session_id=session_id,
        environment=environment,
        tag=tag,
        min_duration_ms=min_duration_ms,
        max_duration_ms=max_duration_ms,
        min_cost=min_cost,
        max_cost=max_cost,
        q=q,
    ).checked("query")
