"""The span-only filters (`kind`, `trace_id`) on top of the list filters, provided once for every
endpoint that lists spans (`GET /spans`, `GET /spans/export`), so a new span filter is declared
here and in `core/listing.py` only."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from observatory_api.core.listing import ListFilters
from observatory_api.core.params import TRACE_ID
from observatory_api.core.query import check_trace_id
from observatory_api.core.vocabulary import SpanKind


def provide_span_filters(
    list_filters: NamedDependency[ListFilters],
    kind: Annotated[SpanKind | None, QueryParameter(required=False, description="`llm` for LLM calls.")] = None,
    trace_id: Annotated[str | None, TRACE_ID] = None,
) -> ListFilters:
    """The list filters of `GET /traces` plus the span's kind and trace, checked."""
    if trace_id is not None:
        check_trace_id(trace_id, source="query")
    return msgspec.structs.replace(list_filters, kind=kind, trace_id=trace_id)
