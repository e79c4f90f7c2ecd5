"""The app's Request class: JSON bodies nested deeper than MAX_JSON_DEPTH are a 400 problem, and
so is a number (or a string of digits) in a body's top-level `from` or `to`: Litestar would read it
as Unix seconds, the API takes RFC 3339 timestamps, as it documents (query parameters: strict_query).

msgspec decodes nesting until Python's recursion limit and then raises RecursionError, which no
handler expected (a 500, at about 1,000 levels, fewer when the stack is already deep). No body the
API takes nests near the limit: a search or metric filter holds at most 8 levels of `and`/`or`/
`not` (about 20 JSON levels). GraphQL and OTLP ingest decode their bodies themselves.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from observatory_api.core.errors import InvalidInput
from observatory_api.core.query import TIME_PARAMETERS, check_rfc3339

MAX_JSON_DEPTH = 64


class ApiRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError:
            raise _too_deep() from None
        body = await self.body()
        # Cheap first: a body with fewer brackets than the limit cannot nest deeper than it.
        if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and nests_deeper(value, MAX_JSON_DEPTH):
            raise _too_deep()
        if isinstance(value, dict):
            for name in TIME_PARAMETERS:
                _check_timestamp(value.get(name), name)
        return value


def _check_timestamp(value: Any, name: str) -> None:
    if isinstance(value, str):
        check_rfc3339(value, name, "body")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        check_rfc3339(str(value), name, "body")


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether `value` (decoded JSON) holds objects or arrays more than `limit` levels deep."""
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep() -> InvalidInput:
    return InvalidInput.field("body", f"JSON may nest at most {MAX_JSON_DEPTH} levels of objects and arrays", "body")
