"""API-key format and hashing, the permission table, client addresses, expiry parsing, and the
memory store's counting (the in-process fallback when Redis is not configured)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from observatory_api.security.api_keys import generate_api_key, hash_api_key, key_matches, key_prefix_of
from observatory_api.security.cli import parse_expiry
from observatory_api.security.permissions import ROLE_PERMISSIONS, Principal
from observatory_api.security.rate_limit import ClientAddress
from observatory_api.security.store import MemorySecurityStore


def test_api_keys_are_recognisable_random_and_stored_only_as_an_hmac() -> None:
    raw, prefix = generate_api_key()
    other, _ = generate_api_key()
    assert raw.startswith("obs_") and raw != other
    assert key_prefix_of(raw) == prefix and len(raw) == 4 + 12 + 1 + 43
    digest = hash_api_key("k" * 40, raw)
    assert len(digest) == 64 and raw not in digest
    assert key_matches("k" * 40, raw, digest)
    assert not key_matches("k" * 40, other, digest)
    assert not key_matches("another-secret-key-0123456789abcdef", raw, digest)
    for malformed in ("obs_short_x", raw[:-1], raw.replace("obs_", "sk_"), raw + "x"):
        assert key_prefix_of(malformed) is None


def test_the_permission_table() -> None:
    def can(role: str, permission: str) -> bool:
        return Principal(subject="s", role=role, kind="jwt").can(permission)  # type: ignore[arg-type]

    assert all(can("admin", p) for p in ("read", "read_content", "admin", "ingest"))
    assert can("developer", "read_content") and not can("developer", "admin")
    assert can("viewer", "read") and not can("viewer", "read_content")
    assert can("ingest", "ingest") and not can("ingest", "read")
    assert not can("unknown-role", "read")
    assert set(ROLE_PERMISSIONS) == {"admin", "developer", "viewer", "ingest"}


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 5000), "headers": headers}


def test_client_address_trusts_x_forwarded_for_only_from_configured_proxies() -> None:
    direct = ClientAddress(())
    assert direct(scope("203.0.113.9", "1.2.3.4")) == "203.0.113.9"
    behind = ClientAddress(("10.0.0.0/8",))
    assert behind(scope("10.1.2.3", "198.51.100.7")) == "198.51.100.7"
    # A client cannot pick its address by prepending hops: the last untrusted hop counts.
    assert behind(scope("10.1.2.3", "1.1.1.1, 198.51.100.7, 10.9.9.9")) == "198.51.100.7"
    # Not from a trusted proxy: the header is ignored.
    assert behind(scope("198.51.100.50", "1.1.1.1")) == "198.51.100.50"
    assert behind(scope("10.1.2.3", "not-an-ip")) == "10.1.2.3"


def test_expiry_accepts_durations_and_rfc3339_times() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("2027-01-01T00:00:00Z", now) == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="expires"):
        parse_expiry("tomorrow", now)


async def test_the_memory_store_counts_concurrent_requests_exactly() -> None:
    store = MemorySecurityStore("unit")
    limit = 7

    async def one() -> bool:
        return (await store.hit([(store.key("rl", "a"), limit), (store.key("rl", "b"), 100)], 60)).allowed

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert sum(results) == limit
    # A refused request is not counted in the other buckets.
    result = await store.hit([(store.key("rl", "b"), 100)], 60)
    assert result.counts[0].count == limit + 1
    assert await store.claim("once", 10) and not await store.claim("once", 10)


async def test_the_memory_store_starts_a_new_window_and_forgets_ended_ones() -> None:
    store = MemorySecurityStore("unit")
    key = store.key("rl", "ip", "192.0.2.1")
    assert (await store.hit([(key, 2)], 1)).allowed
    assert (await store.hit([(key, 2)], 1)).allowed
    refused = await store.hit([(key, 2)], 1)
    assert not refused.allowed and 0 < refused.counts[0].reset_ms <= 1000
    await asyncio.sleep(1.05)
    assert (await store.hit([(key, 2)], 1)).counts[0].count == 1  # a new window
    await asyncio.sleep(1.05)
    await store.delete_expired()
    assert not store._windows  # per-IP windows do not pile up
