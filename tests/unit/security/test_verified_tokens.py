"""The verified-token cache: kept until the earlier of `exp` and its TTL, bounded, keyed by token."""

from __future__ import annotations

from observatory_api.security.tokens import TokenService
from observatory_api.security.verified_tokens import VerifiedTokenCache
from observatory_api.settings import AuthSettings, Settings

SECRET = "unit-test-jwt-secret-0123456789abcdefghijkl"
NOW = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def issue(ttl: int = 3600, subject: str = "alice") -> tuple[str, object]:
    svc = TokenService.from_settings(Settings(environment="test", auth=AuthSettings(jwt_secret=SECRET)))
    issued = svc.issue(subject=subject, role="viewer", kind="access", ttl=ttl, now=NOW)
    return issued.token, issued.claims


def test_claims_are_served_until_the_ttl_lapses() -> None:
    clock = Clock()
    cache = VerifiedTokenCache(60, clock=clock)
    token, claims = issue()
    assert cache.get(token) is None
    cache.put(token, claims)  # type: ignore[arg-type]
    clock.now += 59.9
    assert cache.get(token) is claims
    clock.now += 0.1
    assert cache.get(token) is None
    assert len(cache) == 0


def test_never_past_the_tokens_expiry() -> None:
    clock = Clock()
    cache = VerifiedTokenCache(60, clock=clock)
    token, claims = issue(ttl=10)
    cache.put(token, claims)  # type: ignore[arg-type]
    clock.now += 9.9
    assert cache.get(token) is claims
    clock.now += 0.1
    assert cache.get(token) is None


def test_another_token_of_the_same_subject_is_not_served_from_the_cache() -> None:
    cache = VerifiedTokenCache(60, clock=Clock())
    token, claims = issue()
    cache.put(token, claims)  # type: ignore[arg-type]
    other, _ = issue()
    assert other != token
    assert cache.get(other) is None
    assert cache.get(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_bounded_oldest_first() -> None:
    cache = VerifiedTokenCache(60, max_entries=3, clock=Clock())
    tokens = [issue(subject=f"user-{n}") for n in range(5)]
    for token, claims in tokens:
        cache.put(token, claims)  # type: ignore[arg-type]
    assert len(cache) == 3
    assert [cache.get(token) is not None for token, _ in tokens] == [False, False, True, True, True]


def test_zero_ttl_keeps_nothing() -> None:
    cache = VerifiedTokenCache(0, clock=Clock())
    token, claims = issue()
    cache.put(token, claims)  # type: ignore[arg-type]
    assert cache.get(token) is None
    assert not cache.enabled
