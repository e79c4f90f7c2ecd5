"""Trace search with the boolean filter language: the one implementation behind
`POST /api/v1/traces/search` and GraphQL's `searchTraces`."""

from __future__ import annotations

from observatory_api.core.errors import InvalidInput
from observatory_api.core.filters import Group, parse_filter
from observatory_api.core.listing import ListPage
from observatory_api.core.query import resolve_limit, resolve_window
from observatory_api.settings import QuerySettings
from observatory_api.traces.repository import TraceRepository
from observatory_api.traces.schemas import TracePage, TraceSearch


async def search_traces(
    traces: TraceRepository, search: TraceSearch, *, limits: QuerySettings, allow_content: bool
) -> TracePage:
    """One page of the traces matching `search.filter`; InvalidInput names the faulty part of it.

    Without `allow_content`, a condition on prompt or completion text is refused.
    """
    # `{}` is no filter: refused (filter.field is required) as the metric queries refuse it.
    node = parse_filter(search.filter, max_nodes=limits.max_filter_nodes) if search.filter is not None else None
    if isinstance(node, Group) and not node.items:
        raise InvalidInput.field("filter", "must not be empty", "body")
    page = ListPage(
        window=resolve_window(search.from_, search.to, limits, source="body"),
        node=node,
        # The cursor is bound to the filter as given, so REST and GraphQL pages continue each other.
        fingerprint={"filter": search.filter},
        limit=resolve_limit(search.limit, limits),
        cursor=search.cursor,
    )
    return await traces.list_traces(page, sort=search.sort, allow_content=allow_content)
