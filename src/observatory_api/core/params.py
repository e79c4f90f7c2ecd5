"""The query parameters the REST endpoints share, documented once: time range, identifiers,
pages, bounds. Handlers check the values themselves (core/query.py) and answer with their own
reasons; the patterns here only document those checks in the OpenAPI document."""

from __future__ import annotations

from litestar.params import QueryParameter

from observatory_api.core.query import HEX_SPAN_ID, HEX_TRACE_ID, PLAIN_ID

TIME_FROM = QueryParameter(
    name="from", required=False, description="Start of the range (RFC 3339); default: `to` minus 24 hours."
)
TIME_TO = QueryParameter(required=False, description="End of the range, exclusive (RFC 3339); default: now.")
# Litestar does not enforce `schema_extra`: check_plain, check_trace_id and check_span_id do.
IDENT = QueryParameter(required=False, max_length=200, schema_extra={"pattern": PLAIN_ID.pattern})
TRACE_ID = QueryParameter(required=False, schema_extra={"pattern": HEX_TRACE_ID.pattern})
SPAN_ID = QueryParameter(required=False, schema_extra={"pattern": HEX_SPAN_ID.pattern})
# Litestar leaves a bound of 0 out of the document (it is falsy): say it again.
NON_NEGATIVE = QueryParameter(required=False, ge=0, schema_extra={"minimum": 0})
LIMIT = QueryParameter(required=False, ge=1, le=1000, description="Page size (default 50).")
CURSOR = QueryParameter(required=False, max_length=2048, description="`next_cursor` of the previous page.")
