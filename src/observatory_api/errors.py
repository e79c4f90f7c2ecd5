"""The one map from the domain errors (core/errors.py) and from framework errors to problem+json (RFC 9457)."""

from __future__ import annotations

import enum
import logging
from typing import Any, Literal, get_args, get_origin

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from observatory_api.core.errors import DomainError, FieldError, InvalidInput, Unavailable
from observatory_api.db.failures import database_failure
from observatory_api.observability.request_id import request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://observatory-api.dev/problems/"
logger = logging.getLogger("observatory_api.errors")


class Problem(msgspec.Struct, omit_defaults=True):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = None


_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("INVALID_INPUT", "Invalid input"),
    401: ("UNAUTHORIZED", "Unauthorized"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    406: ("NOT_ACCEPTABLE", "Not acceptable"),
    413: ("PAYLOAD_TOO_LARGE", "Payload too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    429: ("RATE_LIMITED", "Too many requests"),
    503: ("UNAVAILABLE", "Service unavailable"),
}


def request_id_of(request: Request[Any, Any, Any]) -> str:
    return request_id(request.scope)


class _HttpError(DomainError):
    """A framework's HTTP error (an unknown route, a wrong method or media type...) as a domain error."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None) -> None:
        super().__init__(detail, headers=headers)
        self.status_code = status
        self.code, self.title = _HTTP_CODES.get(status, ("HTTP_ERROR", "Request refused"))


def problem_response(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    """The problem+json answer to `error`; every error the service answers is put as a DomainError."""
    body = Problem(
        type=PROBLEM_BASE + error.code.lower().replace("_", "-"),
        title=error.title,
        status=error.status_code,
        detail=error.detail or None,  # an empty detail says nothing: left out
        instance=request.url.path,
        errors=error.errors,
        request_id=request_id_of(request),
    )
    content = msgspec.json.encode(body)
    return Response(
        content=content, status_code=error.status_code, media_type=PROBLEM_MEDIA_TYPE, headers=error.headers
    )


def _domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    return problem_response(request, exc)


def _validation_error_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = [_with_accepted_values(request, error) for error in _field_errors(exc.extra)]
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors) if errors else _clean_detail(exc.detail)
    return problem_response(request, InvalidInput(detail, errors=errors or None))


def _field_errors(extra: Any) -> list[FieldError]:
    """Litestar reports `[{"message", "key", "source"}]`; keep the field name and the reason."""
    if not isinstance(extra, list):
        return []
    errors = []
    for item in extra:
        if isinstance(item, dict) and "message" in item:
            key = item.get("key") or "body"
            key = _PARAMETER_ALIASES.get(key, key)
            # Query and path parameters carry Litestar's ParamType enum; its value is the location.
            source = getattr(item.get("source"), "value", item.get("source"))
            errors.append(
                FieldError(field=str(key), reason=str(item["message"]), source=str(source) if source else None)
            )
    return errors


def _with_accepted_values(request: Request[Any, Any, Any], error: FieldError) -> FieldError:
    """An enum parameter's error lists what the parameter accepts (`kind=LLM`: llm, chain, ...)."""
    if not error.reason.startswith("Invalid enum value"):
        return error
    try:
        handler = request.scope["route_handler"]
        python_name = {wire: name for name, wire in _PARAMETER_ALIASES.items()}.get(error.field, error.field)
        # The handler's own parameters, then those of its dependencies (the shared list filters).
        signatures = [handler.parsed_fn_signature]
        signatures += [provide.parsed_fn_signature for provide in handler.resolve_dependencies().values()]
        field = next(sig.parameters[python_name] for sig in signatures if python_name in sig.parameters)
        accepted = _literal_values(field.annotation)
    except Exception:  # the error answer must never fail on its own explanation
        return error
    if not accepted:
        return error
    return msgspec.structs.replace(error, reason=f"{error.reason}; expected one of {', '.join(accepted)}")


def _literal_values(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    return [value for inner in get_args(annotation) for value in _literal_values(inner)]


# Python names of parameters whose wire name is a keyword.
_PARAMETER_ALIASES = {"from_": "from"}


def _clean_detail(detail: str) -> str:
    # Litestar prefixes validation details with the method and URL; the problem already names the path.
    return detail.split(" for ", 1)[0] if detail.startswith("Validation failed") else detail


def _http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code >= 500:
        return _internal_error_handler(request, exc)
    error = _HttpError(exc.status_code, exc.detail, exc.headers)
    if error.detail == error.title:  # Litestar's default detail repeats the title
        error.detail = ""
    return problem_response(request, error)


def _internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The client sees a safe message; the detail goes to the log with the request id.
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": request_id_of(request), "path": request.url.path},
    )
    # The base DomainError is the 500: INTERNAL, "Internal server error".
    return problem_response(
        request, DomainError("An unexpected error occurred; quote the request id when reporting it.")
    )


# Seconds a client should wait before retrying after a database timeout or outage.
DATABASE_RETRY_AFTER = "5"


class DatabaseTimeout(Unavailable):
    code, title = "DATABASE_TIMEOUT", "Database timeout"


class DatabaseUnavailable(Unavailable):
    code, title = "DATABASE_UNAVAILABLE", "Database unavailable"


_DATABASE_PROBLEMS: dict[str, tuple[type[Unavailable], str]] = {
    "timeout": (
        DatabaseTimeout,
        "the database did not answer in time; narrow the time range or the filters, or retry later",
    ),
    "unavailable": (DatabaseUnavailable, "the database cannot answer now; retry later"),
}


def database_problem(error: BaseException) -> Unavailable | None:
    """The 503 that answers a database error worth retrying later (see `db.failures`), else None."""
    failure = database_failure(error)
    if failure is None:
        return None
    kind, detail = _DATABASE_PROBLEMS[failure]
    return kind(detail, headers={"Retry-After": DATABASE_RETRY_AFTER})


def _database_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    problem = database_problem(exc)
    if problem is None:
        return _internal_error_handler(request, exc)
    # With the traceback: a timeout or connection error raised by something other than the
    # database would otherwise pass for one, unseen.
    logger.warning(
        "database error answered with 503",
        exc_info=exc,
        extra={"request_id": request_id_of(request), "path": request.url.path, "code": problem.code},
    )
    return problem_response(request, problem)


def exception_handlers() -> ExceptionHandlersMap:
    return {
        DomainError: _domain_error_handler,
        DBAPIError: _database_error_handler,
        PoolTimeout: _database_error_handler,
        # What the driver raises unwrapped (its command timeout, a refused connection, a failed
        # lookup, an unreachable host) is an OSError; any other OSError still answers 500.
        OSError: _database_error_handler,
        ValidationException: _validation_error_handler,
        NotFoundException: _http_error_handler,
        NotAuthorizedException: _http_error_handler,
        PermissionDeniedException: _http_error_handler,
        TooManyRequestsException: _http_error_handler,
        HTTPException: _http_error_handler,
        Exception: _internal_error_handler,
    }
