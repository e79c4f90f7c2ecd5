"""Documentation shared by the controllers and schemas: the problem+json answers (RFC 9457, the
`Problem` of `errors.py`) each operation can give, declared with the media type they are sent in,
constraints the handlers check themselves, the filter language as a schema, and links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

# Litestar's own Struct schema plugin: it has no option for closed objects.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Link,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)

from observatory_api.core.filters import ATTRIBUTE_FIELD, MAX_IN_VALUES, OPS_BY_KIND, field_names
from observatory_api.errors import PROBLEM_MEDIA_TYPE, Problem

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

_PROBLEMS = {
    400: "Invalid input: `errors` names each field (query, path or body) and the reason",
    401: "No valid credential (problem+json)",
    403: "The caller's role may not do this (problem+json)",
    404: "Not found (problem+json)",
    413: "The body is larger than `server.max_body_bytes` (problem+json)",
    429: "A rate limit is used up; `Retry-After` says when to retry (problem+json)",
    503: "Database timeout or outage, or the request ran out of time; `Retry-After` when retrying helps (problem+json)",
}

# The credentials an operation takes (OpenAPI security requirements; the schemes are declared by
# `security_schemes()`): Swagger UI's Authorize button and generated clients send them.
API_KEY_SCHEME = "apiKey"
BEARER_SCHEME = "bearerAuth"
AUTHENTICATED: list[dict[str, list[str]]] = [{API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]
API_KEY_ONLY: list[dict[str, list[str]]] = [{API_KEY_SCHEME: []}]
# Answered without a credential (the empty requirement); OPTIONAL shows more to a caller who sends one.
OPEN: list[dict[str, list[str]]] = [{}]
OPTIONAL: list[dict[str, list[str]]] = [{}, *AUTHENTICATED]


def security_schemes() -> dict[str, SecurityScheme | Reference]:
    return {
        API_KEY_SCHEME: SecurityScheme(
            type="apiKey",
            name="X-API-Key",
            security_scheme_in="header",
            description="An API key (`observatory-api keys create`, or the one `serve --demo` prints).",
        ),
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An access token from POST /api/v1/auth/token (or `observatory-api token create`).",
        ),
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
    """An OpenAPI link from a 200 answer to `operation_id`, each parameter read from the answer's
    body at a JSON pointer, e.g. `trace_id="data/0/trace_id"` (`$response.body#/data/0/trace_id`)."""
    expressions = {name: f"$response.body#/{pointer}" for name, pointer in parameters.items()}
    return Link(operation_id=operation_id, description=description, parameters=expressions)


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


def streamed(media_types: dict[str, str]) -> type[Operation]:
    """An `operation_class` whose 200 response is a stream in one of `media_types` (media type ->
    what a line or row holds), instead of the JSON object Litestar would document for a Stream."""

    @dataclass
    class StreamedOperation(Operation):
        def __post_init__(self) -> None:
            answer = (self.responses or {}).get("200")
            if isinstance(answer, OpenAPIResponse):
                answer.content = {
                    media_type: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, description=what))
                    for media_type, what in media_types.items()
                }

    return StreamedOperation


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's schemas of msgspec Structs, with `additionalProperties: false` for the Structs
    that forbid unknown fields: the server refuses an unknown key (400), so may the document."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


# The filter language of `filters.py`: search filters name trace fields and the span fields a
# trace matches through its spans; metric filters name span fields. Litestar keeps only its own
# components, so the grammar is written out to FILTER_LEVELS levels; deeper nodes are objects.
FILTER_LEVELS = 2
_FILTER_DESCRIPTION = (
    "A condition `{field, op, value}` (no `value` with `exists`), `and`/`or` of a non-empty list of "
    "filters, or `not` of one; at most 8 levels and query.max_filter_nodes (50) nodes. Which operators "
    "and values a field takes: see docs/api.md#search."
)


def nullable_filter(target: Literal["traces", "spans"]) -> list[dict[str, Any]]:
    """`oneOf` arms of an optional filter field: the filter language over `target`, or null."""
    return [{**_filter(target, FILTER_LEVELS), "description": _FILTER_DESCRIPTION}, {"type": "null"}]


def _filter(target: Literal["traces", "spans"], levels: int) -> dict[str, Any]:
    if levels == 0:
        return {"type": "object"}
    inner = _filter(target, levels - 1)
    fields = [field for field in field_names(target) if not field.endswith(".<path>")]
    condition = _closed(
        {
            "field": {"anyOf": [{"type": "string", "enum": fields}, {"type": "string", "pattern": ATTRIBUTE_FIELD}]},
            "op": {"type": "string", "enum": sorted(OPS_BY_KIND["json"])},
            "value": {"description": f"A string, number or boolean; a list of at most {MAX_IN_VALUES} for `in`."},
        },
        required=["field", "op"],
    )
    groups = [_closed({key: {"type": "array", "items": inner, "minItems": 1}}, required=[key]) for key in ("and", "or")]
    return {"oneOf": [condition, *groups, _closed({"not": inner}, required=["not"])]}


def _closed(properties: dict[str, Any], *, required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
