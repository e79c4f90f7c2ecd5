"""`searchTraces`: the boolean filter language of `POST /api/v1/traces/search`, by the same service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from observatory_api.core.errors import InvalidInput
from observatory_api.graphql.context import GraphQLInfo
from observatory_api.graphql.enums import NEWEST_TRACES_FIRST, TraceSort
from observatory_api.graphql.resolver import resolver
from observatory_api.graphql.types import Trace, TracePage
from observatory_api.traces.schemas import TraceSearch
from observatory_api.traces.search import search_traces

FILTER = (
    'A boolean tree: `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`, or a condition '
    '`{"field": "attributes.customer.tier", "op": "in", "value": ["gold", "pro"]}` (ops: eq, ne, in, '
    "gt, gte, lt, lte, contains, exists) over trace fields, span fields and span attributes. A span "
    "condition matches a trace when one of its spans matches. Conditions on content (`input`, "
    "`output`, `status_message`, content attributes and events) are refused for the viewer role. "
    "Null: every trace of the range."
)


@strawberry.type
class SearchQueries:
    @resolver(
        description="Traces matching a boolean filter, as `POST /api/v1/traces/search`; newest first by default. "
        "`nextCursor` continues with the same arguments (or in the REST body's `cursor`)."
    )
    async def search_traces(
        self,
        info: GraphQLInfo,
        filter: Annotated[JSON | None, strawberry.argument(description=FILTER)] = None,
        from_: Annotated[
            datetime | None, strawberry.argument(name="from", description="Default: `to` minus 24 hours.")
        ] = None,
        to: Annotated[datetime | None, strawberry.argument(description="Exclusive; default: now.")] = None,
        sort: TraceSort = NEWEST_TRACES_FIRST,
        limit: Annotated[int | None, strawberry.argument(description="Page size (default 50, at most 1000).")] = None,
        after: Annotated[str | None, strawberry.argument(description="`nextCursor` of the previous page.")] = None,
    ) -> TracePage:
        ctx = info.context
        given: Any = filter
        if given is not None and not isinstance(given, dict):
            # REST's body decoder refuses a non-object `filter` before the search runs.
            raise InvalidInput.field("filter", "must be an object", "argument")
        search = TraceSearch(filter=given, from_=from_, to=to, sort=sort.value, limit=limit, cursor=after)
        ctx.budget.check()
        page = await search_traces(ctx.traces, search, limits=ctx.settings.query, allow_content=ctx.allow_content)
        ctx.budget.read_and_returned(len(page.data))
        return TracePage(items=[Trace.of(t) for t in page.data], next_cursor=page.next_cursor, has_more=page.has_more)
