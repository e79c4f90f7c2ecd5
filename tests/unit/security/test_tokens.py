"""JWTs: what is accepted, and every forgery and misuse refused with its own reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import ecdsa
import pytest
import rsa
from jose import jwt

from observatory_api.security.tokens import TokenError, TokenService
from observatory_api.settings import AuthSettings, ConfigError, Settings

SECRET = "unit-test-jwt-secret-0123456789abcdefghijkl"


def service(**auth: object) -> TokenService:
    return TokenService.from_settings(Settings(environment="test", auth=AuthSettings(jwt_secret=SECRET, **auth)))


def reason(svc: TokenService, token: str, expected: str = "access") -> str:
    with pytest.raises(TokenError) as caught:
        svc.decode(token, expected_type=expected)  # type: ignore[arg-type]
    return caught.value.reason


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_an_issued_token_carries_every_claim_and_decodes() -> None:
    svc = service()
    issued = svc.issue(subject="alice", role="viewer", kind="access", key_id="abcdef012345")
    claims = svc.decode(issued.token, expected_type="access")
    assert (claims.sub, claims.role, claims.type, claims.key) == ("alice", "viewer", "access", "abcdef012345")
    assert claims.iss == claims.aud == "observatory-api"
    assert claims.exp - claims.iat == 3600 and claims.nbf == claims.iat
    assert len(claims.jti) == 32 and len(claims.fam) == 32
    refresh = svc.issue(subject="alice", role="viewer", kind="refresh")
    assert refresh.claims.exp - refresh.claims.iat == 7 * 24 * 3600


def test_alg_none_is_refused() -> None:
    svc = service()
    body = jwt.get_unverified_claims(svc.issue(subject="eve", role="admin", kind="access").token)
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(body)}."
    assert reason(svc, unsigned) == "algorithm"


def test_a_switched_algorithm_is_refused() -> None:
    other = jwt.encode({"sub": "eve"}, SECRET, algorithm="HS512")
    assert reason(service(), other) == "algorithm"


def test_a_tampered_signature_or_payload_is_refused() -> None:
    svc = service()
    token = svc.issue(subject="bob", role="viewer", kind="access").token
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert reason(svc, f"{header}.{payload}.{flipped}") == "signature"
    promoted = jwt.get_unverified_claims(token) | {"role": "admin"}
    assert reason(svc, f"{header}.{b64(promoted)}.{signature}") == "signature"
    assert reason(svc, jwt.encode(promoted, "another-secret-0123456789abcdefghij", algorithm="HS256")) == "signature"


def test_expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() -> None:
    svc = service(leeway_seconds=30)
    now = int(time.time())
    expired = svc.issue(subject="c", role="viewer", kind="access", ttl=60, now=now - 100)
    assert reason(svc, expired.token) == "expired"
    within_leeway = svc.issue(subject="c", role="viewer", kind="access", ttl=60, now=now - 75)
    assert svc.decode(within_leeway.token, expected_type="access").sub == "c"
    future = svc.issue(subject="c", role="viewer", kind="access", now=now + 120)
    assert reason(svc, future.token) == "not_yet_valid"


def test_a_refresh_token_is_not_an_access_token_and_vice_versa() -> None:
    svc = service()
    assert reason(svc, svc.issue(subject="d", role="viewer", kind="refresh").token) == "token_type"
    assert reason(svc, svc.issue(subject="d", role="viewer", kind="access").token, "refresh") == "token_type"


def test_an_unknown_crit_header_is_refused() -> None:
    svc = service()
    claims = jwt.get_unverified_claims(svc.issue(subject="e", role="viewer", kind="access").token)
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"crit": ["exp-ext"], "exp-ext": 1})
    assert reason(svc, token) == "crit"


def test_wrong_issuer_or_audience_is_refused() -> None:
    svc = service()
    claims = jwt.get_unverified_claims(svc.issue(subject="f", role="viewer", kind="access").token)
    assert reason(svc, jwt.encode(claims | {"iss": "someone-else"}, SECRET, algorithm="HS256")) == "claims"
    assert reason(svc, jwt.encode(claims | {"aud": "another-api"}, SECRET, algorithm="HS256")) == "claims"
    assert reason(svc, jwt.encode(claims | {"role": "root"}, SECRET, algorithm="HS256")) == "claims"
    assert reason(svc, "not-a-jwt") == "malformed"


def signed(claims: dict) -> str:
    """A token this service's key signed, with whatever claims: what a leaked key or a bug could mint."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_token_issued_in_the_future_is_refused_beyond_the_leeway() -> None:
    svc = service(leeway_seconds=30)
    claims = jwt.get_unverified_claims(svc.issue(subject="i", role="viewer", kind="access").token)
    now = int(time.time())
    # Valid now (nbf in the past, exp in an hour), but issued a day from now.
    assert reason(svc, signed(claims | {"iat": now + 86_400, "nbf": now - 10})) == "not_yet_valid"
    assert svc.decode(signed(claims | {"iat": now + 20}), expected_type="access").sub == "i"


def test_a_token_living_longer_than_this_service_issues_is_refused() -> None:
    svc = service(leeway_seconds=30, access_ttl_seconds=3600, refresh_ttl_seconds=7 * 86_400)
    claims = jwt.get_unverified_claims(svc.issue(subject="j", role="viewer", kind="access").token)
    iat = claims["iat"]
    assert reason(svc, signed(claims | {"exp": iat + 3600 + 31})) == "claims"
    assert svc.decode(signed(claims | {"exp": iat + 3600 + 30}), expected_type="access").sub == "j"
    # A refresh token may live 7 days, an access token not.
    assert reason(svc, signed(claims | {"exp": iat + 86_400})) == "claims"
    refresh = jwt.get_unverified_claims(svc.issue(subject="j", role="viewer", kind="refresh").token)
    assert svc.decode(signed(refresh | {"exp": iat + 86_400}), expected_type="refresh").sub == "j"
    assert reason(svc, signed(refresh | {"exp": iat + 8 * 86_400}), "refresh") == "claims"
    # The issue's example: exp = 1e20, as a float and as an integer.
    assert reason(svc, signed(claims | {"exp": 1e20})) == "claims"
    assert reason(svc, signed(claims | {"exp": 10**20})) == "claims"
    with pytest.raises(ValueError, match="between 1 and 3600"):
        svc.issue(subject="j", role="viewer", kind="access", ttl=3601)


def test_missing_or_ill_typed_claims_are_claims_failures_not_signature_failures() -> None:
    svc = service()
    claims = jwt.get_unverified_claims(svc.issue(subject="k", role="viewer", kind="access").token)
    for claim in ("exp", "nbf", "iat", "iss", "aud", "sub", "jti", "fam", "role", "type"):
        without = {name: value for name, value in claims.items() if name != claim}
        assert reason(svc, signed(without)) == "claims", claim
    for value in (None, [1], "soon", float("inf")):
        assert reason(svc, signed(claims | {"exp": value})) == "claims", value
        assert reason(svc, signed(claims | {"iat": value})) == "claims", value
    # A payload that is not an object of claims, under a good signature.
    header = b64({"alg": "HS256", "typ": "JWT"})
    assert reason(svc, jws_sign(header, base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode())) == "claims"


def jws_sign(header: str, payload: str) -> str:
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.fixture(scope="module")
def rsa_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("rsa")
    public, private = rsa.newkeys(2048)
    (folder / "private.pem").write_bytes(private.save_pkcs1())
    (folder / "public.pem").write_bytes(public.save_pkcs1())
    return str(folder / "private.pem"), str(folder / "public.pem")


def test_rs256_signs_with_the_private_key_file_and_refuses_the_hmac_confusion(rsa_files: tuple[str, str]) -> None:
    private, public = rsa_files
    svc = service(algorithm="RS256", private_key_file=private, public_key_file=public)
    token = svc.issue(subject="g", role="developer", kind="access").token
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert svc.decode(token, expected_type="access").role == "developer"
    # The classic attack: sign HS256 with the public key as the HMAC secret.
    claims = jwt.get_unverified_claims(token)
    forged = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.{token.split('.')[2]}"
    assert reason(svc, forged) == "algorithm"


def test_es256_works_from_key_files(tmp_path: Path) -> None:
    key = ecdsa.SigningKey.generate(curve=ecdsa.NIST256p)
    (tmp_path / "private.pem").write_bytes(key.to_pem())
    (tmp_path / "public.pem").write_bytes(key.get_verifying_key().to_pem())
    svc = service(
        algorithm="ES256", private_key_file=str(tmp_path / "private.pem"), public_key_file=str(tmp_path / "public.pem")
    )
    assert svc.decode(svc.issue(subject="h", role="viewer", kind="access").token, expected_type="access").sub == "h"


def test_missing_key_files_and_secrets_outside_development_stop_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.private_key_file: cannot read"):
        service(algorithm="RS256", private_key_file=str(tmp_path / "absent.pem"))
    (tmp_path / "k.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=r"auth\.public_key_file: is required"):
        service(algorithm="RS256", private_key_file=str(tmp_path / "k.pem"))
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        TokenService.from_settings(Settings(environment="staging"))
    # Development falls back to a placeholder (logged at start-up) so that `serve --demo` works.
    assert TokenService.from_settings(Settings(environment="development")).issue(
        subject="dev", role="viewer", kind="access"
    )
