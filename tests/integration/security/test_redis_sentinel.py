"""The app's Redis state through Sentinel (a primary, a replica, three Sentinels: tests/sentinel_group.py):
rate limits, API-key lookups, the response cache and the CLI's revocation reach the primary the
Sentinels name, and a `SENTINEL FAILOVER` under requests is ridden out: every request answered,
rate limits fail open only while no primary answers and resume on the new primary with the counts
it replicated, no request counted twice, revocations (in the database) refused throughout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from observatory_api.redis_client import PRIMARY_CHECK_SECONDS
from observatory_api.security.cli import drop_cached_keys
from observatory_api.settings import DatabaseSettings, RateLimitSettings, RedisSettings, Settings
from tests.conftest import TEST_AUTH, auth_headers, make_settings
from tests.integration.security.conftest import create_key, open_client, revoke_key
from tests.integration.security.test_authentication import assert_401
from tests.integration.security.test_revocation import bearer, login, wait_for_fresh_read
from tests.sentinel_group import SentinelGroup, sentinel_group

MODELS = "/api/v1/models"
# Longer than any test: a window never ends mid-test and resets a count.
WINDOW = 600
LOOP_SECONDS = 30.0

# One backend: what is tested is Redis, and the group takes seconds to start.
pytestmark = pytest.mark.parametrize("migrated_database", ["postgresql"], indirect=True)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with sentinel_group(tmp_path) as started:
        yield started


def sentinel_settings(database: DatabaseSettings, redis: RedisSettings, *, limit: int) -> Settings:
    timing = {"revocation_refresh_seconds": 0.2, "revocation_max_staleness_seconds": 1.0}
    return make_settings(
        database,
        redis=redis,
        auth=msgspec.structs.replace(TEST_AUTH, **timing),
        rate_limit=RateLimitSettings(window=WINDOW, auth_per_ip=100_000, roles={"developer": limit, "viewer": limit}),
    )


def primary_keys(group: SentinelGroup, prefix: str) -> list[str]:
    client = group.data_client(group.current_primary())
    return sorted(key.decode() for key in client.scan_iter(match=f"{prefix}:*", count=1000))


def test_every_store_reaches_the_primary_the_sentinels_name(
    migrated_database: DatabaseSettings, group: SentinelGroup
) -> None:
    settings = sentinel_settings(migrated_database, group.settings(key_prefix="through"), limit=3)
    key = create_key(settings, role="developer")
    with open_client(settings) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["components"]["redis"]["status"] == "ok"
        statuses = [client.get(MODELS, headers={"X-API-Key": key}).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        keys = primary_keys(group, "through")
        # The rate-limit counter, the cached key lookup and the cached response, on the primary.
        assert any(k.startswith("through:ratelimit:caller:key:") for k in keys), keys
        assert any(":auth:apikey:" in k for k in keys), keys
        assert any(k.startswith("through:cache") for k in keys), keys
        # ...and replicated: the replica holds the same keys.
        replica = group.replica if group.current_primary() is group.primary else group.primary
        assert sorted(k.decode() for k in group.data_client(replica).scan_iter(match="through:*")) == keys


@dataclass(frozen=True)
class Answer:
    at: float
    status: int
    count: int | None  # the rate-limit count of this request; None when served without counting


def request_loop(client: TestClient[Any], headers: dict[str, str], stop: threading.Event, out: list[Answer]) -> None:
    """Sequential requests until `stop` (bounded by LOOP_SECONDS): one caller, one request at a time."""
    deadline = time.monotonic() + LOOP_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        response = client.get(MODELS, headers=headers)
        limit, remaining = response.headers.get("ratelimit-limit"), response.headers.get("ratelimit-remaining")
        count = int(limit) - int(remaining) if limit is not None and remaining is not None else None
        out.append(Answer(time.monotonic(), response.status_code, count))


def test_a_failover_under_requests_is_ridden_out_and_limits_resume_on_the_new_primary(
    migrated_database: DatabaseSettings, group: SentinelGroup
) -> None:
    limit = 1_000_000
    settings = sentinel_settings(migrated_database, group.settings(key_prefix="failover"), limit=limit)
    headers = auth_headers(settings, "developer", subject="steady-caller")
    key = create_key(settings, role="viewer")
    answers: list[Answer] = []
    stop = threading.Event()
    with open_client(settings) as client:
        logged_out = login(client, key)
        assert client.post("/api/v1/auth/revoke", headers=bearer(logged_out)).status_code == 204
        loop = threading.Thread(target=request_loop, args=(client, headers, stop, answers))
        loop.start()
        try:
            while len(answers) < 20:
                time.sleep(0.02)
            old = group.current_primary()
            # Everything counted so far is on the replica before the switch (replication is async).
            group.data_client(old).execute_command("WAIT", 1, 2000)  # type: ignore[no-untyped-call]
            switched_at = time.monotonic()
            group.failover()
            new = group.wait_for_new_primary(old)
            # The revoked token stays refused while Redis changes hands: revocation is in the database.
            wait_for_fresh_read(client)
            assert_401(client.get(MODELS, headers=bearer(logged_out)), "revoked")
            # The workers leave the old primary at their next check of the Sentinels (docs/redis.md);
            # then the counts come from the new primary for a while.
            time.sleep(2 * PRIMARY_CHECK_SECONDS)
            settled_at = time.monotonic()
            deadline = settled_at + LOOP_SECONDS
            while not any(a.count is not None and a.at > settled_at + 0.5 for a in answers):
                assert time.monotonic() < deadline, "rate limits never resumed"
                time.sleep(0.05)
        finally:
            stop.set()
            loop.join(timeout=LOOP_SECONDS)
        assert client.get("/ready").status_code == 200
    assert new is not old
    # Every request answered, none refused: a failover is no reason for a 5xx or a 429.
    assert {a.status for a in answers} == {200}, [a.status for a in answers if a.status != 200]
    counts = [a.count for a in answers if a.count is not None]
    before = [a.count for a in answers if a.count is not None and a.at < switched_at]
    after = [a.count for a in answers if a.count is not None and a.at > switched_at + 1.0]
    # No request counted twice (a retried script, a replayed command): one caller, one request at a
    # time, so each count is at most one above the one before.
    assert all(b - a <= 1 for a, b in pairwise(counts)), counts
    # The new primary continued from the replicated counts: no limit window started afresh.
    assert after and min(after) > max(before), (before[-3:], after[:3])
    # Its counter is the last count answered: every counted request was stored once, on it.
    counter_keys = [k for k in primary_keys(group, "failover") if "steady-caller" in k]
    assert len(counter_keys) == 1, primary_keys(group, "failover")
    stored = int(group.data_client(new).get(counter_keys[0]) or 0)
    # Every counted request was counted there: none landed on the old primary after the switch
    # (a planned failover leaves it accepting writes until the Sentinels demote it).
    # (The connection carrying a request's command when the worker switched used to reconnect to
    # the old primary, about one run in three: docs/redis.md, "Planned failover".)
    assert stored == counts[-1], (stored, counts[-1], group.data_client(old).get(counter_keys[0]))


def test_limits_are_exact_on_the_new_primary_and_a_revoked_key_is_dropped_there(
    migrated_database: DatabaseSettings, group: SentinelGroup
) -> None:
    settings = sentinel_settings(migrated_database, group.settings(key_prefix="after"), limit=5)
    key = create_key(settings, role="developer")
    with open_client(settings) as client:
        assert client.get(MODELS, headers={"X-API-Key": key}).status_code == 200
        old = group.current_primary()
        group.data_client(old).execute_command("WAIT", 1, 2000)  # type: ignore[no-untyped-call]
        group.failover()
        new = group.wait_for_new_primary(old)
        # The old primary still accepts writes (the Sentinels demote it seconds later): the app's
        # workers leave it at their next check of the Sentinels (docs/redis.md).
        time.sleep(2 * PRIMARY_CHECK_SECONDS)
        deadline = time.monotonic() + LOOP_SECONDS
        while "ratelimit-limit" not in (response := client.get(MODELS, headers={"X-API-Key": key})).headers:
            assert response.status_code == 200
            assert time.monotonic() < deadline, "rate limits never resumed"
        used = 5 - int(response.headers["ratelimit-remaining"])
        # Counted on the new primary, continuing from the replicated count of the first request.
        counter = next(k for k in primary_keys(group, "after") if ":ratelimit:caller:key:" in k)
        assert int(group.data_client(new).get(counter) or 0) == used == 2
        rest = [client.get(MODELS, headers={"X-API-Key": key}).status_code for _ in range(8)]
        assert rest == [200] * (5 - used) + [429] * (8 - (5 - used))
        # `keys revoke` drops the cached lookup through the Sentinels, on the new primary: refused at once.
        revoke_key(settings, key)
        asyncio.run(drop_cached_keys(settings, [key.split("_")[1]]))
        assert not [k for k in primary_keys(group, "after") if ":auth:apikey:" in k]
        assert_401(client.get(MODELS, headers={"X-API-Key": key}))
