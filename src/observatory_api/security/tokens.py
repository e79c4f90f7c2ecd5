"""JWT access and refresh tokens. The only module that imports python-jose, so it can be swapped here.

Decoding accepts only the configured algorithm, issuer and audience, with a small leeway, and
refuses any `crit` header (this service understands no JWS extensions), a token issued in the
future, and one that lives longer than this service issues tokens of its type for (so that no
token outlives the revocation of its family). Every refusal carries a reason, which the caller
counts in `api_auth_failures_total`.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWSError, JWTClaimsError, JWTError

from observatory_api.core.vocabulary import ROLES
from observatory_api.settings import AuthSettings, Settings
from observatory_api.settings.errors import ConfigError
from observatory_api.settings.secret_rules import DEVELOPMENT_JWT_SECRET

TokenType = Literal["access", "refresh"]
# Checked here rather than by python-jose, which reports a missing claim as a generic JWTError
# (indistinguishable from a bad signature) and does not check `aud` is present at all.
REQUIRED_CLAIMS = ("exp", "nbf", "iat", "iss", "aud", "sub", "jti")


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
        longest = self.access_ttl if kind == "access" else self.refresh_ttl
        lifetime = ttl if ttl is not None else longest
        if not 0 < lifetime <= longest:
            # decode() would refuse it: no token outlives the revocation of its family.
            raise ValueError(f"ttl must be between 1 and {longest} seconds for {kind} tokens")
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
                options={"leeway": self._auth.leeway_seconds},
            )
        except ExpiredSignatureError:
            raise TokenError("expired", "the token has expired") from None
        except JWTClaimsError as exc:
            if _not_yet_valid(token, self._auth.leeway_seconds):
                raise TokenError("not_yet_valid", "the token is not valid yet") from None
            raise TokenError("claims", f"the token's claims are not accepted: {exc}") from None
        except JWTError as exc:
            # The signature is checked first; anything jose refuses after it is the payload.
            if isinstance(exc.__context__, JWSError):
                raise TokenError("signature", "the token's signature does not verify") from None
            raise TokenError("claims", "the token's payload is not a JSON object of claims") from None
        except (TypeError, ValueError, OverflowError):
            # jose calls int() on exp, nbf and iat: null, a list or Infinity end here.
            raise TokenError("claims", "the token's time claims are not numbers") from None
        missing = [claim for claim in REQUIRED_CLAIMS if claim not in payload]
        if missing:
            raise TokenError("claims", f"the token lacks the required claim `{missing[0]}`")
        try:
            claims = msgspec.convert(payload, TokenClaims)
        except msgspec.ValidationError as exc:
            raise TokenError("claims", f"the token's claims are not accepted: {exc}") from None
        if claims.role not in ROLES:
            raise TokenError("claims", "the token names an unknown role")
        if claims.type != expected_type:
            raise TokenError("token_type", f"a {claims.type} token cannot be used as an {expected_type} token")
        self._check_times(claims)
        return claims

    def _check_times(self, claims: TokenClaims) -> None:
        leeway = self._auth.leeway_seconds
        if claims.iat > time.time() + leeway:
            raise TokenError("not_yet_valid", "the token was issued in the future")
        longest = self.access_ttl if claims.type == "access" else self.refresh_ttl
        if claims.exp - claims.iat > longest + leeway:
            raise TokenError(
                "claims", f"the token lives longer than the {longest} s this service issues {claims.type} tokens for"
            )


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
