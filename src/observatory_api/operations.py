"""The route decorators of the /api/v1 reads: each operation declares its path, id, summary, the
problems it adds to the API's (404 for lookups, 413 for bodies), and the links of its answer."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.openapi.spec import Link, Operation

from observatory_api.openapi_docs import api_responses, link, linked

# Where an answer leads: a page of traces (listed or searched), of spans, of sessions, a session.
FIRST_TRACE = link("get_trace", "The first trace of the page.", trace_id="data/0/trace_id")
FIRST_SPAN_TRACE = link("get_trace", "The trace of the first span.", trace_id="data/0/trace_id")
FIRST_SESSION = link("get_session", "The first session.", session_id="data/0/session_id")
SESSION_FIRST_TRACE = link("get_trace", "The first trace of the session.", trace_id="traces/0/trace_id")


def api_get(path: str, operation_id: str, summary: str, *problems: int, cache: bool = False, **links: Link) -> get:
    """A GET operation; `cache=True` keeps its answers in the response cache."""
    return get(
        path,
        operation_id=operation_id,
        summary=summary,
        responses=api_responses(*problems),
        operation_class=linked(**links) if links else Operation,
        cache=cache,
    )


def api_post(path: str, operation_id: str, summary: str, *problems: int, **links: Link) -> post:
    """A POST that reads (a query too large or too structured for a query string): it answers 200."""
    return post(
        path,
        operation_id=operation_id,
        summary=summary,
        status_code=200,
        responses=api_responses(*problems),
        operation_class=linked(**links) if links else Operation,
    )


class ResourceController(Controller):
    """The controller of one /api/v1 resource: its OpenAPI tag is its path (`/traces`: `traces`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.tags = [cls.path.strip("/")]
