"""Who may do what: one table, enforced by Litestar guards, and the principal that guards read.

Every `/api/v1` route needs `read`; content (prompts, completions, log bodies) needs
`read_content`; `/api/v1/admin/*` needs `admin`; the coming OTLP ingest needs `ingest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from observatory_api.core.errors import Forbidden, Unauthorized

Permission = Literal["read", "read_content", "admin", "ingest"]

ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "admin": frozenset({"read", "read_content", "admin", "ingest"}),
    "developer": frozenset({"read", "read_content"}),
    "viewer": frozenset({"read"}),
    # Writes spans and logs (OTLP ingest), reads nothing.
    "ingest": frozenset({"ingest"}),
}


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller, as `request.user`."""

    subject: str
    role: str
    kind: Literal["jwt", "api_key"]
    key_id: str | None = None  # the API key behind the credential (for tokens exchanged from a key too)
    token_id: str | None = None  # jti of an access token
    family_id: str | None = None  # refresh-token family the access token belongs to
    expires_at: int | None = None  # epoch seconds: the token's exp or the key's expiry

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def requires(permission: Permission) -> Guard:
    """A guard: 401 without a principal, 403 problem JSON when the role lacks `permission`."""

    # Async: Litestar runs a sync guard in a worker thread, a thread hop on every request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal is None:
            raise Unauthorized("a credential is required", headers={"WWW-Authenticate": 'Bearer realm="observatory"'})
        if not principal.can(permission):
            raise Forbidden(f"the {principal.role} role may not {_ACTIONS[permission]}")

    guard.__name__ = f"requires_{permission}"
    return guard


_ACTIONS: Mapping[str, str] = {
    "read": "read observability data",
    "read_content": "read prompt, completion or log content",
    "admin": "use admin endpoints",
    "ingest": "write spans or logs",
}


def content_allowed(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the caller sees span input/output and log bodies (and may search them)."""
    principal = principal_of(connection)
    return principal is not None and principal.can("read_content")
