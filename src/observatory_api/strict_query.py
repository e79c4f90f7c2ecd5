"""Checks on the parameters of every request, before its handler reads them: a query parameter
the handler does not declare is refused (a typo must not silently widen a query), and so is a NUL
character in any query or path parameter (PostgreSQL cannot hold one in text: binding it failed)
and a number in a timestamp parameter (`from`, `to`)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from observatory_api.core.errors import InvalidInput
from observatory_api.core.query import TIME_PARAMETERS, check_rfc3339, check_text

_allowed: dict[int, frozenset[str]] = {}


async def check_request_parameters(request: Request[Any, Any, Any]) -> None:
    await reject_unknown_query_params(request)
    reject_nul_characters(request)


async def reject_unknown_query_params(request: Request[Any, Any, Any]) -> None:
    if not request.scope.get("query_string"):
        return
    handler = request.route_handler
    allowed = _allowed.get(id(handler))
    if allowed is None:
        # Litestar reads only the names of the path parameters (their definitions are the route's).
        model = handler.create_kwargs_model(path_parameters=dict.fromkeys(request.path_params))  # type: ignore[arg-type]
        allowed = _allowed[id(handler)] = frozenset(p.field_alias for p in model.expected_query_params)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise InvalidInput.field(unknown[0], f"unknown query parameter; this endpoint accepts: {accepted}", "query")


def reject_nul_characters(request: Request[Any, Any, Any]) -> None:
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, name, "path")
    for name, value in request.query_params.multi_items():
        check_text(value, name, "query")
        if name in TIME_PARAMETERS:
            check_rfc3339(value, name)
