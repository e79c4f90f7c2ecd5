"""The service's error vocabulary: what a request can fail with, whatever answers it.

errors.py maps these to problem+json for REST; graphql/errors.py to `extensions.code`.
"""

from __future__ import annotations

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One invalid input: where it came from and why it was refused."""

    field: str
    reason: str
    source: str | None = None


class DomainError(Exception):
    """Base of the service's error vocabulary. `code` is shared with GraphQL's `extensions.code`."""

    status_code = 500
    code = "INTERNAL"
    title = "Internal server error"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class NotFound(DomainError):
    status_code, code, title = 404, "NOT_FOUND", "Not found"


class InvalidInput(DomainError):
    status_code, code, title = 400, "INVALID_INPUT", "Invalid input"

    @classmethod
    def field(cls, field: str, reason: str, source: str | None = None) -> InvalidInput:
        return cls(f"{field}: {reason}", errors=[FieldError(field=field, reason=reason, source=source)])


class Unauthorized(DomainError):
    status_code, code, title = 401, "UNAUTHORIZED", "Unauthorized"


class Forbidden(DomainError):
    status_code, code, title = 403, "FORBIDDEN", "Forbidden"


class RateLimited(DomainError):
    status_code, code, title = 429, "RATE_LIMITED", "Too many requests"


class Unavailable(DomainError):
    status_code, code, title = 503, "UNAVAILABLE", "Service unavailable"


class PayloadTooLarge(DomainError):
    status_code, code, title = 413, "PAYLOAD_TOO_LARGE", "Payload too large"
