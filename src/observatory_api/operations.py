"""The route decorators of the /api/v1 reads: each operation declares its path, id, summary, the
problems it adds to the API's (404 for lookups, 413 for bodies), and the links of its answer."""

from __future__ import annotations

from litestar import get, post
from litestar.openapi.spec import Link, Operation

from observatory_api.openapi_docs import api_responses, linked


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
