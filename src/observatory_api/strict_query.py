"""Refuse query parameters a handler does not declare: a typo must not silently widen a query."""

from __future__ import annotations

from typing import Any

from litestar import Request

from observatory_api.errors import InvalidInput

_allowed: dict[int, frozenset[str]] = {}


async def reject_unknown_query_params(request: Request[Any, Any, Any]) -> None:
    if not request.scope.get("query_string"):
        return
    handler = request.route_handler
    allowed = _allowed.get(id(handler))
    if allowed is None:
        model = handler.create_kwargs_model(path_parameters=dict.fromkeys(request.path_params))
        allowed = _allowed[id(handler)] = frozenset(p.field_alias for p in model.expected_query_params)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise InvalidInput.field(unknown[0], f"unknown query parameter; this endpoint accepts: {accepted}", "query")
