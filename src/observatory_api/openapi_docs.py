"""Documentation shared by the controllers and schemas: the problem+json answers (RFC 9457, the
`Problem` of `errors.py`) each operation can give, declared with the media type they are sent in,
and constraints the handlers check themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Link, OpenAPIResponse, Operation

from observatory_api.errors import PROBLEM_MEDIA_TYPE, Problem

_PROBLEMS = {
    400: "Invalid input: `errors` names each field (query, path or body) and the reason",
    401: "No valid credential (problem+json)",
    403: "The caller's role may not do this (problem+json)",
    404: "Not found (problem+json)",
    413: "The body is larger than `server.max_body_bytes` (problem+json)",
    429: "A rate limit is used up; `Retry-After` says when to retry (problem+json)",
    503: "Database timeout or outage, or the request ran out of time; `Retry-After` when retrying helps (problem+json)",
}

# Every operation under /api/v1 can answer these: an unknown query parameter is a 400 everywhere,
# and authentication, role guards, rate limits and the database stand in front of every handler.
API = (400, 401, 403, 429, 503)


def problems(*codes: int) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=_PROBLEMS[code],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for code in sorted(codes)
    }


def api_responses(*extra: int) -> dict[int, ResponseSpec]:
    """The problems of an /api/v1 operation: API, plus `extra` (404 for lookups, 413 for bodies)."""
    return problems(*API, *extra)


def documented(**schema: Any) -> msgspec.Meta:
    """A body field's constraints for the OpenAPI document (Litestar `Schema` attribute names),
    which the handler checks with its own reasons naming the field; msgspec does not enforce
    them (GraphQL builds the same structs without decoding JSON)."""
    return msgspec.Meta(extra_json_schema={"extra": schema})


def link(operation_id: str, description: str, **parameters: str) -> Link:
    """An OpenAPI link from a 200 answer to `operation_id`, its parameters taken from the answer
    by runtime expressions, e.g. `trace_id="$response.body#/data/0/trace_id"`."""
    return Link(operation_id=operation_id, description=description, parameters=parameters)


def linked(**links: Link) -> type[Operation]:
    """An `operation_class` whose 200 response carries `links`: where a client (or a stateful
    fuzzer) goes next with the ids the answer holds."""

    @dataclass
    class LinkedOperation(Operation):
        def __post_init__(self) -> None:
            answer = (self.responses or {}).get("200")
            if isinstance(answer, OpenAPIResponse):
                answer.links = dict(links)

    return LinkedOperation
