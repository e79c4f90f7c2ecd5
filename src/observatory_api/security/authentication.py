"""One authentication middleware for REST, GraphQL and OTLP ingest.

Accepted on every route: `Authorization: Bearer <JWT>`; an API key as `X-API-Key: <key>`, as
`Authorization: Bearer <key>` (what Traceloop's SDK and many collectors send: a bearer value that
is not a JWT is looked up as a key), or as the password of HTTP Basic (the Collector's
`basicauth` extension; the user name is ignored).

It sets `request.user` to a Principal. Open routes (health, docs, `/api/v1/auth/token` and
`/refresh`) accept a request without a credential, and then `request.user` is None; every other
route answers 401 problem JSON with `WWW-Authenticate`. Each refusal is counted by reason.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Receive, Scope, Send

from observatory_api.core.errors import Unauthorized
from observatory_api.core.vocabulary import AUTH_PREFIX, GRAPHIQL_PATH, PROBE_PATHS, SCHEMA_PATH
from observatory_api.observability.metrics import api_auth_failures_total
from observatory_api.security.api_keys import ApiKeyRecord, ApiKeyRepository, key_matches, key_prefix_of
from observatory_api.security.key_usage import KeyUsageRecorder
from observatory_api.security.permissions import Principal
from observatory_api.security.resources import security_resources
from observatory_api.security.revocation import Revocations
from observatory_api.security.store import SecurityStore, StoreUnavailable
from observatory_api.security.tokens import TokenClaims, TokenError, TokenService, TokenType
from observatory_api.security.verified_tokens import VerifiedTokenCache

logger = logging.getLogger("observatory_api.security")
# Route templates answered without a credential; `/schema` covers every docs page.
# GraphiQL's page holds no data (development only); its requests to /graphql carry the credential.
OPEN_ROUTES = frozenset({"/", *PROBE_PATHS, f"{AUTH_PREFIX}/token", f"{AUTH_PREFIX}/refresh", GRAPHIQL_PATH})
OPEN_PREFIXES = (SCHEMA_PATH,)
REALM = 'Bearer realm="observatory"'
_MISSING_KEY = b"-"
# A scope key holding the Principal the cache fast path already authenticated this request as.
PREAUTHENTICATED = "observatory_principal"
ACCEPTED_FORMS = (
    "Authorization: Bearer <token or API key>, X-API-Key: <API key>, or HTTP Basic with the API key as password"
)


class Credential(msgspec.Struct, frozen=True):
    """What a request presented: a JWT to decode, or an API key to look up."""

    kind: Literal["jwt", "api_key"]
    value: str


class AuthFailure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def is_open_route(scope: Scope) -> bool:
    template = scope.get("path_template") or scope.get("path", "")
    if template in OPEN_ROUTES or template.startswith(OPEN_PREFIXES):
        return True
    handler = scope.get("route_handler")
    return handler is not None and bool(handler.opt.get("no_credential"))


def api_key_cache_key(store: SecurityStore, prefix: str) -> str:
    return store.key("auth", "apikey", prefix)


class Authenticator:
    """Turns a credential into a Principal, or raises AuthFailure with a bounded reason."""

    def __init__(
        self,
        *,
        tokens: TokenService,
        secret_key: str,
        key_cache_ttl: int,
        verified_tokens: VerifiedTokenCache | None = None,
    ):
        self.tokens = tokens
        self._secret_key = secret_key
        self._key_cache_ttl = key_cache_ttl
        self.verified_tokens = VerifiedTokenCache(0) if verified_tokens is None else verified_tokens

    async def authenticate(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
        credential = presented_credential(connection.headers)
        if credential is None:
            return None
        return await self.principal_for(credential, connection.scope["litestar_app"].state)

    async def principal_for(self, credential: Credential, state: Any) -> Principal:
        """The caller behind a credential (HTTP headers or gRPC metadata), or AuthFailure."""
        if credential.kind == "api_key":
            return await self.from_api_key(credential.value, state)
        claims = self.decode(credential.value, "access")
        return await self.from_access_claims(claims, state)

    def decode(self, token: str, expected: TokenType) -> TokenClaims:
        # Access tokens only: a refresh token is used once, then rotated.
        cache = self.verified_tokens if expected == "access" else None
        if cache is not None and (cached := cache.get(token)) is not None:
            return cached
        try:
            claims = self.tokens.decode(token, expected_type=expected)
        except TokenError as exc:
            raise AuthFailure(exc.reason, exc.detail) from None
        if cache is not None:
            cache.put(token, claims)
        return claims

    async def from_api_key(self, raw: str, state: Any) -> Principal:
        prefix = key_prefix_of(raw)
        if prefix is None:
            raise AuthFailure(
                "key_malformed",
                f"not a JWT, and not an API key (obs_<12 hex>_<43 characters)); send {ACCEPTED_FORMS}",
            )
        record = await self.key_record(prefix, state)
        if record is None or not key_matches(self._secret_key, raw, record.key_hash):
            raise AuthFailure("key_unknown", "the API key is not known")
        self.accept_key(record, state)
        return Principal(
            subject=f"api-key:{record.id}",
            role=record.role,
            kind="api_key",
            key_id=record.id,
            expires_at=int(record.expires_at.timestamp()) if record.expires_at else None,
        )

    async def from_access_claims(self, claims: TokenClaims, state: Any) -> Principal:
        # Logout revokes the token's whole family, so the family alone decides (no I/O: the
        # worker's list; Unavailable when that list is too old to vouch for the token).
        revocations: Revocations = state.revocations
        if revocations.is_revoked(claims.fam):
            raise AuthFailure("revoked", "the token has been revoked")
        key_id = None
        if claims.key is not None:
            # A token exchanged from an API key dies with the key.
            record = await self.key_record(claims.key, state)
            if record is None:
                raise AuthFailure("key_unknown", "the API key behind this token no longer exists")
            self.accept_key(record, state)
            key_id = record.id
        return Principal(
            subject=claims.sub,
            role=claims.role,
            kind="jwt",
            key_id=key_id,
            token_id=claims.jti,
            family_id=claims.fam,
            expires_at=claims.exp,
        )

    async def key_record(self, prefix: str, state: Any) -> ApiKeyRecord | None:
        """By prefix, from the store when cached (a hot key costs no database round trip)."""
        store: SecurityStore = state.security_store
        cache_key = api_key_cache_key(store, prefix)
        cached: bytes | None = None
        with contextlib.suppress(StoreUnavailable):
            cached = await store.get(cache_key)
        if cached == _MISSING_KEY:
            return None
        if cached:
            return msgspec.msgpack.decode(cached, type=ApiKeyRecord)
        record = await ApiKeyRepository(security_resources(state).read_engine).by_prefix(prefix)
        try:
            value = _MISSING_KEY if record is None else msgspec.msgpack.encode(record)
            await store.set(cache_key, value, self._key_cache_ttl)
        except StoreUnavailable:
            pass
        return record

    def accept_key(self, record: ApiKeyRecord, state: Any) -> None:
        """Refuse a revoked or expired key; else note its use (throttled, in the background)."""
        self.check_key(record)
        recorder: KeyUsageRecorder | None = getattr(state, "key_usage", None)
        if recorder is not None:
            recorder.record(record.id)

    @staticmethod
    def check_key(record: ApiKeyRecord) -> None:
        reason = record.refusal(datetime.now(UTC))
        if reason is not None:
            raise AuthFailure(
                reason, "the API key has been revoked" if reason == "key_revoked" else "the API key expired"
            )


def presented_credential(headers: Mapping[str, str]) -> Credential | None:
    """The one credential of a request (None without any); AuthFailure when it is unusable."""
    authorization = headers.get("authorization")
    api_key = headers.get("x-api-key")
    if authorization is None and api_key is None:
        return None
    if authorization is not None and api_key is not None:
        raise AuthFailure("ambiguous", "send either Authorization or X-API-Key, not both")
    if api_key is not None:
        return Credential("api_key", api_key.strip())
    assert authorization is not None  # one of the two is set, and it is not the API key
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        return Credential("api_key", _basic_password(value))
    if scheme.lower() != "bearer" or not value:
        raise AuthFailure("malformed", f"send {ACCEPTED_FORMS}")
    # A JWT has three dot-separated parts; an API key has no dot at all.
    return Credential("jwt" if value.count(".") == 2 else "api_key", value)


def _basic_password(encoded: str) -> str:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthFailure(
            "malformed", f"the Basic credential is not base64 of user:password; send {ACCEPTED_FORMS}"
        ) from None
    user, _, password = decoded.partition(":")
    # The key is the password (the Collector's basicauth `client_auth`); a key alone as user works too.
    return (password or user).strip()


def unauthorized(failure: AuthFailure) -> Unauthorized:
    description = failure.detail.replace('"', "'").replace("\\", "")
    challenge = f'{REALM}, error="invalid_token", error_description="{description}"'
    if failure.reason == "missing":
        challenge = REALM
    return Unauthorized(failure.detail, headers={"WWW-Authenticate": challenge})


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Sets `scope["user"]` (a Principal or None) and `scope["auth"]` (the credential kind)."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        on_failure: Callable[[Scope, AuthFailure], Awaitable[dict[str, str]]] | None = None,
    ) -> None:
        super().__init__(app, scopes={ScopeType.HTTP, ScopeType.WEBSOCKET})
        self.authenticator = authenticator
        self.on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in self.scopes or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        principal = scope.get(PREAUTHENTICATED)
        if isinstance(principal, Principal):
            # Authenticated (and revocation checked) moments ago for this very request.
            result = AuthenticationResult(user=principal, auth=principal.kind)
        else:
            result = await self.authenticate_request(ASGIConnection(scope))
        scope["user"] = result.user
        scope["auth"] = result.auth
        await self.app(scope, receive, send)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        scope = connection.scope
        open_route = is_open_route(scope)
        try:
            principal = await self.authenticator.authenticate(connection)
            if principal is None and not open_route:
                raise AuthFailure("missing", f"a credential is required: {ACCEPTED_FORMS}")
        except AuthFailure as failure:
            api_auth_failures_total.labels(failure.reason).inc()
            logger.info(
                "credential refused",
                extra={"reason": failure.reason, "path": scope.get("path_template") or scope.get("path")},
            )
            scope.setdefault("state", {})["auth_failure"] = failure
            if open_route:
                return AuthenticationResult(user=None, auth=None)
            refusal = unauthorized(failure)
            if self.on_failure is not None:
                # Counts against the client IP: 429 instead of 401 once guessing goes on too long.
                refusal.headers.update(await self.on_failure(scope, failure))
            raise refusal from None
        return AuthenticationResult(user=principal, auth=principal.kind if principal else None)
