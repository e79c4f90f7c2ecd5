"""One error policy: the domain errors keep their message and carry their REST code in
`extensions.code`; GraphQL syntax and validation errors are INVALID_INPUT (with introspection off,
naming only what the request named: names.py); a database timeout or outage is DATABASE_TIMEOUT /
DATABASE_UNAVAILABLE; a spent row budget replaces the whole answer with one ROW_BUDGET_EXCEEDED
error (no partial data); anything else is masked and logged with the request id. Also counts
operations for `api_graphql_queries_total`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from observatory_api.core.errors import DomainError
from observatory_api.errors import database_problem
from observatory_api.graphql.budget import ROW_BUDGET_CODE, RowBudget
from observatory_api.graphql.names import SchemaNames, request_names
from observatory_api.observability.metrics import api_graphql_queries_total
from observatory_api.observability.request_id import request_id

logger = logging.getLogger("observatory_api.graphql")
MASKED_MESSAGE = "Internal server error"


class ErrorPolicy(SchemaExtension):
    # Set (by `error_policy`) when introspection is off: the schema names messages may not reveal.
    hidden_names: SchemaNames | None = None

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        result = context.result
        request = getattr(context.context, "request", None)
        rid = request_id(request.scope) if request is not None else None
        budget = getattr(context.context, "budget", None)
        if result is not None and isinstance(budget, RowBudget) and budget.exceeded:
            _refuse_whole_answer(result, budget, rid)
        errors: list[GraphQLError] | None = None
        if result is not None and getattr(result, "errors", None):
            errors = result.errors
        elif context.pre_execution_errors:
            errors = context.pre_execution_errors
        if errors:
            named = None
            if self.hidden_names is not None:
                named = request_names(context.query, context.operation_name, context.variables)
            safe = [_safe(error, rid, self.hidden_names, named) for error in errors]
            if result is not None and getattr(result, "errors", None):
                result.errors = safe
            if context.pre_execution_errors:
                context.pre_execution_errors[:] = safe
        try:
            operation = context.operation_type.value
        except Exception:  # an unparsable document has no operation
            operation = "invalid"
        api_graphql_queries_total.labels(operation=operation, status="error" if errors else "ok").inc()


def error_policy(hidden_names: SchemaNames | None) -> type[ErrorPolicy]:
    return type("ErrorPolicy", (ErrorPolicy,), {"hidden_names": hidden_names})


def _refuse_whole_answer(result: Any, budget: RowBudget, rid: str | None) -> None:
    # A partial answer would still carry up to `max_rows` rows, and null fields that are not null.
    logger.warning(
        "graphql row budget exceeded (request id %s): read %d, returned %d, limit %d",
        rid,
        budget.read,
        budget.returned,
        budget.max_rows,
        extra={"request_id": rid},
    )
    result.data = None
    result.errors = [GraphQLError(budget.message, extensions={"code": ROW_BUDGET_CODE})]


def _safe(
    error: GraphQLError, rid: str | None, hidden_names: SchemaNames | None, named: frozenset[str] | None
) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.errors:
            extensions["errors"] = [{"field": e.field, "reason": e.reason} for e in original.errors]
        return _copy(error, original.detail, extensions)
    problem = database_problem(original) if original is not None else None
    if problem is not None:  # a timeout or an outage: the client may retry, nothing to mask
        code = problem.code
        logger.warning("graphql resolver: %s (request id %s)", code, rid, exc_info=original, extra={"request_id": rid})
        return _copy(error, problem.detail, {"code": code, "request_id": rid})
    if original is None or error.path is None:
        # Parse, validation and variable errors (depth, cost, aliases, tokens, unknown fields, a
        # malformed DateTime) happen before any resolver runs: they describe only the client's query.
        code = (error.extensions or {}).get("code", "INVALID_INPUT")
        message = error.message
        if hidden_names is not None and named is not None:
            message = hidden_names.hide(message, named)
        return _copy(error, message, {"code": code})
    logger.error(
        "graphql resolver failed (request id %s, path %s)",
        rid,
        ".".join(str(p) for p in error.path or ()),
        exc_info=original,
        extra={"request_id": rid},
    )
    return _copy(error, MASKED_MESSAGE, {"code": "INTERNAL", "request_id": rid})


def _copy(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )
