"""AuthController: exchange an API key for tokens, rotate them, log out, and say who the caller is."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import Body

from observatory_api.auth.schemas import Limits, Me, RefreshRequest, TokenPair
from observatory_api.core.errors import InvalidInput, Unauthorized
from observatory_api.core.structs import copy_fields
from observatory_api.observability.metrics import api_auth_failures_total
from observatory_api.openapi_docs import API_KEY_ONLY, AUTHENTICATED, OPEN, problems
from observatory_api.security.api_keys import key_prefix_of
from observatory_api.security.authentication import (
    ACCEPTED_FORMS,
    Authenticator,
    AuthFailure,
    presented_credential,
    unauthorized,
)
from observatory_api.security.permissions import ROLE_PERMISSIONS, Principal, principal_of
from observatory_api.security.revocation import Revocations
from observatory_api.settings import Settings

_NO_KEY = f"send an API key to obtain tokens: {ACCEPTED_FORMS}"
# No role guard here; the store behind rotation and logout may be unavailable (503).
AUTH_PROBLEMS = problems(400, 401, 429, 503)


def _auth_post(
    path: str,
    operation_id: str,
    summary: str,
    security: list[dict[str, list[str]]],
    *problem_codes: int,
    status_code: int = 200,
) -> HTTPRouteHandler:
    """A POST of /auth: `AUTH_PROBLEMS` and `problem_codes`, and the credential `security` names."""
    responses = {**AUTH_PROBLEMS, **problems(*problem_codes)}
    return post(
        path,
        operation_id=operation_id,
        summary=summary,
        status_code=status_code,
        responses=responses,
        security=security,
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @_auth_post("/token", "create_token", "Exchange an API key for tokens", API_KEY_ONLY)
    async def create_token(self, request: Request[Any, Any, Any], state: State) -> TokenPair:
        """Send the key as `X-API-Key`, `Authorization: Bearer <key>` or Basic (key as password);
        returns an access token (1 hour) and a refresh token (7 days)."""
        principal = principal_of(request)
        if principal is None or principal.kind != "api_key":
            failure = request.scope.get("state", {}).get("auth_failure")
            if isinstance(failure, AuthFailure):
                raise unauthorized(failure)
            raise unauthorized(AuthFailure("missing", _NO_KEY))
        credential = presented_credential(request.headers)
        prefix = key_prefix_of(credential.value) if credential is not None else None
        return _pair(state.authenticator, subject=principal.subject, role=principal.role, key_prefix=prefix)

    # OPEN: the refresh token is in the body.
    @_auth_post("/refresh", "refresh_token", "Rotate a refresh token", OPEN, 413)
    async def refresh_token(self, state: State, data: Annotated[RefreshRequest, Body()]) -> TokenPair:
        """Returns a new pair; the old refresh token stops working, and presenting it again revokes
        every token of its family (a stolen token gets the thief and the owner logged out)."""
        authenticator: Authenticator = state.authenticator
        revocations: Revocations = state.revocations
        try:
            claims = authenticator.decode(data.refresh_token, "refresh")
            # Claimed in the database (503 when it cannot be written): no Redis eviction or
            # restart lets a spent refresh token through again.
            use = await revocations.use_refresh_token(jti=claims.jti, family_id=claims.fam, exp=claims.exp)
            if use == "revoked":
                raise AuthFailure("revoked", "the refresh token's family has been revoked")
            if use == "reused":
                raise AuthFailure("refresh_reuse", "the refresh token was already used; its family is revoked")
            if claims.key is not None:
                record = await authenticator.key_record(claims.key, state)
                if record is None:
                    raise AuthFailure("key_unknown", "the API key behind this token no longer exists")
                authenticator.accept_key(record, state)
        except AuthFailure as failure:
            api_auth_failures_total.labels(failure.reason).inc()
            raise unauthorized(failure) from None
        return _pair(authenticator, subject=claims.sub, role=claims.role, key_prefix=claims.key, family=claims.fam)

    @_auth_post("/revoke", "revoke_token", "Log out", AUTHENTICATED, status_code=204)
    async def revoke_token(self, request: Request[Any, Any, Any], state: State) -> None:
        """Revokes every token of the presented token's refresh family (this access token, its
        refresh token, and all earlier and later tokens of the login) until they expire."""
        principal = _required(request)
        if principal.kind != "jwt" or principal.token_id is None or principal.family_id is None:
            raise InvalidInput("API keys are revoked by an operator: `observatory-api keys revoke`")
        revocations: Revocations = state.revocations
        await revocations.revoke(principal.family_id, "logout")

    @get(
        "/me",
        operation_id="get_me",
        summary="Who am I",
        responses=AUTH_PROBLEMS,
        cache=False,
        security=AUTHENTICATED,
    )
    async def get_me(self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]) -> Me:
        """Your subject, role, permissions and rate limits."""
        principal = _required(request)
        limits = settings.rate_limit
        return copy_fields(
            Me,
            principal,
            permissions=sorted(ROLE_PERMISSIONS.get(principal.role, ())),
            content_redacted=not principal.can("read_content"),
            rate_limit=Limits(
                enabled=limits.enabled,
                window_seconds=limits.window,
                requests=limits.roles.get(principal.role, limits.requests),
                endpoints=dict(limits.endpoints),
            ),
        )


def _required(request: Request[Any, Any, Any]) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise Unauthorized("a credential is required")
    return principal


def _pair(
    authenticator: Authenticator, *, subject: str, role: str, key_prefix: str | None, family: str | None = None
) -> TokenPair:
    tokens = authenticator.tokens
    refresh = tokens.issue(subject=subject, role=role, kind="refresh", family_id=family, key_id=key_prefix)
    access = tokens.issue(subject=subject, role=role, kind="access", family_id=refresh.claims.fam, key_id=key_prefix)
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=tokens.access_ttl,
        refresh_expires_in=tokens.refresh_ttl,
    )
