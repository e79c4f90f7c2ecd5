"""A bounded per-worker cache of access tokens whose signature and claims were verified.

Verifying a JWT (header parse, HMAC or RSA/EC signature, claim checks in python-jose) costs a
few hundred microseconds per request, and a client sends the same token on every request until
it expires. What `TokenService.decode` decides about a token depends only on the token and on
the clock: once it has accepted it, it accepts it again until `exp` (plus leeway). So the
verified claims are kept, keyed by a hash of the token (the token itself is not held as a key),
until the earlier of `exp` and a short TTL, and served without decoding again.

Only the decode is cached. Revocation (the token's family, the API key it was exchanged from)
is checked by the caller on every request, cached or not, so a logout or a key revocation still
refuses the token at once. Refusals are never cached: a bad token is decoded (and counted) each
time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from observatory_api.security.tokens import TokenClaims

DEFAULT_MAX_ENTRIES = 10_000


class VerifiedTokenCache:
    def __init__(
        self, ttl_seconds: float, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        # Insertion-ordered: the first entry is the oldest, evicted first when full.
        self._entries: dict[bytes, tuple[float, TokenClaims]] = {}

    @property
    def enabled(self) -> bool:
        return self._ttl > 0 and self._max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.blake2b(token.encode(), digest_size=20).digest()

    def get(self, token: str) -> TokenClaims | None:
        """The claims verified earlier for this exact token, while still valid; else None."""
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        valid_until, claims = entry
        if self._clock() >= valid_until:
            del self._entries[key]
            return None
        return claims

    def put(self, token: str, claims: TokenClaims) -> None:
        """Remember claims `TokenService.decode` has just accepted for `token`."""
        if not self.enabled:
            return
        now = self._clock()
        # `exp` without the leeway: past it the token is decoded again, and jose applies the leeway.
        valid_until = min(float(claims.exp), now + self._ttl)
        if valid_until <= now:
            return
        while len(self._entries) >= self._max_entries:
            # The oldest entry: with one TTL for all, also the first to lapse.
            del self._entries[next(iter(self._entries))]
        self._entries[self._key(token)] = (valid_until, claims)
