"""JWT access and refresh tokens. The only module that imports python-jose, so it can be swapped here.

Decoding accepts only the configured algorithm, issuer and audience, with a small leeway, and
refuses any `crit` header (this service understands no JWS extensions). Every refusal carries a
reason, which the caller counts in `api_auth_failures_total`.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError, JWTError

from observatory_api.secret_rules import DEVELOPMENT_JWT_SECRET
from observatory_api.security.permissions import ROLES
from observatory_api.settings import AuthSettings, ConfigError, Settings

TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """A refused token; `reason` is a bounded label: malformed, algorithm, crit, signature, expired,
    not_yet_valid, claims, token_type."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class TokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    sub: str
    role: str
    type: TokenType
    jti: str
    fam: str  # refresh-token family: every token of one login chain shares it
    iat: int
    nbf: int
    exp: int
    iss: str
    aud: str
    key: str | None = None  # the API key the chain started from, if any


class IssuedToken(msgspec.Struct, frozen=True):
    token: str
    claims: TokenClaims


class TokenService:
    def __init__(self, auth: AuthSettings, *, signing_key: Any, verifying_key: Any) -> None:
        self._auth = auth
        self._algorithm = auth.algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        auth = settings.auth
        if auth.algorithm.startswith("HS"):
            secret = auth.jwt_secret or _development_only(settings, "auth.jwt_secret (JWT_SECRET)")
            return cls(auth, signing_key=secret, verifying_key=secret)
        private = _read_key(auth.private_key_file, "auth.private_key_file")
        public = _read_key(auth.public_key_file, "auth.public_key_file")
        return cls(auth, signing_key=private, verifying_key=public)

    @property
    def access_ttl(self) -> int:
        return self._auth.access_ttl_seconds

    @property
    def refresh_ttl(self) -> int:
        return self._auth.refresh_ttl_seconds

    def issue(
        self,
        *,
        subject: str,
        role: str,
        kind: TokenType,
        ttl: int | None = None,
        family_id: str | None = None,
        key_id: str | None = None,
        now: int | None = None,
    ) -> IssuedToken:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        issued = int(time.time()) if now is None else now
        lifetime = ttl if ttl is not None else (self.access_ttl if kind == "access" else self.refresh_ttl)
        claims = TokenClaims(
            sub=subject,
            role=role,
            type=kind,
            jti=secrets.token_hex(16),
            fam=family_id or secrets.token_hex(16),
            iat=issued,
            nbf=issued,
            exp=issued + lifetime,
            iss=self._auth.issuer,
            aud=self._auth.audience,
            key=key_id,
        )
        payload = {k: v for k, v in msgspec.structs.asdict(claims).items() if v is not None}
        token = jwt.encode(payload, self._signing_key, algorithm=self._algorithm)
        return IssuedToken(token=token, claims=claims)

    def decode(self, token: str, *, expected_type: TokenType) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise TokenError("malformed", "the token is not a well-formed JWT") from None
        if header.get("alg") != self._algorithm:
            raise TokenError("algorithm", f"only {self._algorithm} tokens are accepted")
        if "crit" in header:
            raise TokenError("crit", "the token names critical header extensions this service does not support")
        try:
            payload = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self._algorithm],
                audience=self._auth.audience,
                issuer=self._auth.issuer,
                options={
                    "leeway": self._auth.leeway_seconds,
                    **{f"require_{claim}": True for claim in ("exp", "nbf", "iat", "iss", "aud", "sub", "jti")},
                },
            )
        except ExpiredSignatureError:
            raise TokenError("expired", "the token has expired") from None
        except JWTClaimsError as exc:
            if _not_yet_valid(token, self._auth.leeway_seconds):
                raise TokenError("not_yet_valid", "the token is not valid yet") from None
            raise TokenError("claims", f"the token's claims are not accepted: {exc}") from None
        except JWTError:
            raise TokenError("signature", "the token's signature does not verify") from None
        try:
            claims = msgspec.convert(payload, TokenClaims)
        except msgspec.ValidationError:
            raise TokenError("claims", "the token lacks required claims") from None
        if claims.role not in ROLES:
            raise TokenError("claims", "the token names an unknown role")
        if claims.type != expected_type:
            raise TokenError("token_type", f"a {claims.type} token cannot be used as an {expected_type} token")
        return claims


def _not_yet_valid(token: str, leeway: int) -> bool:
    try:
        nbf = jwt.get_unverified_claims(token).get("nbf")
    except JWTError:
        return False
    return isinstance(nbf, int) and nbf > time.time() + leeway


def _development_only(settings: Settings, key: str) -> str:
    if settings.environment not in ("development", "test"):
        raise ConfigError(key, f"is required when ENVIRONMENT={settings.environment}")
    return DEVELOPMENT_JWT_SECRET


def _read_key(path: str | None, key: str) -> str:
    if not path:
        raise ConfigError(key, "is required for RS256 and ES256")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(key, f"cannot read the key file ({exc.__class__.__name__})") from None
