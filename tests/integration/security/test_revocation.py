"""Token revocation lives in the database: logged-out and spent tokens stay refused whatever Redis
loses, every instance learns a logout within one refresh, and checks fail closed (503) when the
revocation state cannot be read or written. Both backends, through the real app."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import text

from observatory_api.db.engine import create_engine, database_url
from observatory_api.settings import DatabaseSettings, RateLimitSettings, RedisSettings, Settings
from tests.conftest import TEST_AUTH, make_settings
from tests.integration.security.conftest import PrivateRedis, counter, create_key, open_client
from tests.integration.security.test_authentication import assert_401

REFRESH_SECONDS = 0.2
MODELS = "/api/v1/models"


def revocation_settings(database: DatabaseSettings, redis: RedisSettings, **auth: Any) -> Settings:
    timing = {"revocation_refresh_seconds": REFRESH_SECONDS, "revocation_max_staleness_seconds": 1.0, **auth}
    return make_settings(
        database,
        redis=redis,
        auth=msgspec.structs.replace(TEST_AUTH, **timing),
        rate_limit=RateLimitSettings(auth_per_ip=100_000, roles={"developer": 100_000}),
    )


def login(client: TestClient, key: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(pair: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def refresh(client: TestClient, pair: dict[str, str]) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})


def wait_until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Bounded waiting, never a timing assertion: a slow machine only waits longer."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def wait_for_fresh_read(client: TestClient) -> None:
    """Until a read of the revocation list that began after this call has ended: the one in
    flight now may have begun before, the next one cannot."""
    revocations = client.app.state.revocations
    seen = revocations.list.reads
    wait_until(lambda: revocations.list.reads >= seen + 2)


def run_sql(database: DatabaseSettings, *statements: str) -> None:
    """Statements on the owner role, outside the app (as a DBA or an outage would act)."""

    async def run() -> None:
        engine = create_engine(database, database_url(database))
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def refuse_inserts(database: DatabaseSettings, table: str) -> list[str]:
    """Triggers that make INSERTs into `table` fail (a database that cannot be written); returns
    the statements that drop them again."""
    if database.url is None:
        refuse = "BEGIN SELECT RAISE(ABORT, 'no writes'); END"
        run_sql(database, f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} {refuse}")
        return [f"DROP TRIGGER refuse_{table}"]
    run_sql(
        database,
        "CREATE OR REPLACE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no writes'; END $$",
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_writes()",
    )
    return [f"DROP TRIGGER refuse_{table} ON {table}"]


def evict_everything(server: PrivateRedis, client: TestClient, headers: dict[str, str]) -> None:
    """A tiny `maxmemory` with `allkeys-lru`, filled by ordinary GETs through the response cache
    (another caller's), until every key stored before the filling has been evicted."""
    redis = server.client()
    before = set(redis.keys("*"))
    assert before, "nothing stored in Redis yet"
    redis.config_set("maxmemory-policy", "allkeys-lru")
    redis.config_set("maxmemory-samples", 10)  # closer to true LRU: the oldest keys go first
    redis.config_set("maxmemory", int(redis.info("memory")["used_memory"]) + 32 * 1024)
    for page in range(1, 1001):
        # Distinct queries, each a cache entry of its own; long filter values make each entry
        # a few hundred bytes, so that a few hundred GETs go round the memory.
        params = {"limit": page, "user_id": f"user-{page:04d}-" + "u" * 180, "session_id": "s" * 190}
        for sort in ("-start_time", "start_time", "-duration", "cost"):
            response = client.get("/api/v1/traces", params={**params, "sort": sort}, headers=headers)
            assert response.status_code == 200, response.text
        if not before & set(redis.keys("*")):
            break
    assert not before & set(redis.keys("*")), "Redis kept some keys"
    assert redis.info("stats")["evicted_keys"] > 0


@pytest.fixture
def viewer(migrated_database: DatabaseSettings, redis_settings: RedisSettings) -> tuple[Settings, str]:
    """The revocation tests' settings (fast revocation reads) and a viewer's API key."""
    settings = revocation_settings(migrated_database, redis_settings)
    return settings, create_key(settings, role="viewer")


@pytest.fixture
def redis_server(tmp_path) -> Iterator[PrivateRedis]:  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.mark.parametrize("loss", ["flushall", "eviction", "restart"])
def test_logged_out_and_spent_tokens_stay_refused_whatever_redis_loses(
    migrated_database: DatabaseSettings, redis_server: PrivateRedis, loss: str
) -> None:
    settings = revocation_settings(migrated_database, RedisSettings(url=redis_server.url))
    key = create_key(settings, role="developer")
    filler = create_key(settings, role="developer", name="filler")
    with open_client(settings) as client:
        logged_out = login(client, key)
        assert client.get(MODELS, headers=bearer(logged_out)).status_code == 200
        assert client.post("/api/v1/auth/revoke", headers=bearer(logged_out)).status_code == 204
        spent = login(client, key)
        rotated = refresh(client, spent)
        assert rotated.status_code == 200
        if loss == "flushall":
            redis_server.client().flushall()
        elif loss == "eviction":
            evict_everything(redis_server, client, {"X-API-Key": filler})
        else:
            redis_server.restart()
        assert_401(client.get(MODELS, headers=bearer(logged_out)), "revoked")
        assert_401(refresh(client, logged_out), "revoked")
        reuse = counter("api_auth_failures_total", reason="refresh_reuse")
        assert_401(refresh(client, spent), "already used")
        assert counter("api_auth_failures_total", reason="refresh_reuse") == reuse + 1
        # The reuse revoked the family: the pair the spent token bought is dead too.
        assert_401(client.get(MODELS, headers=bearer(rotated.json())), "revoked")
        assert_401(refresh(client, rotated.json()))
        # Redis still does its own jobs: a fresh login works, and is counted.
        fresh = login(client, key)
        assert client.get(MODELS, headers=bearer(fresh)).headers["ratelimit-limit"] == "100000"


def test_a_logout_reaches_another_instance_within_one_refresh(viewer: tuple[Settings, str]) -> None:
    settings, key = viewer
    with open_client(settings) as one, open_client(settings) as two:
        pair = login(one, key)
        assert two.get(MODELS, headers=bearer(pair)).status_code == 200
        assert one.post("/api/v1/auth/revoke", headers=bearer(pair)).status_code == 204
        # At once on the instance that wrote it...
        assert_401(one.get(MODELS, headers=bearer(pair)), "revoked")
        # ...and on the other one after its next read of the database.
        wait_for_fresh_read(two)
        assert_401(two.get(MODELS, headers=bearer(pair)), "revoked")
        assert_401(refresh(two, pair), "revoked")


def test_refresh_reuse_is_detected_across_instances(viewer: tuple[Settings, str]) -> None:
    settings, key = viewer
    with open_client(settings) as one, open_client(settings) as two:
        first = login(one, key)
        rotated = refresh(one, first)
        assert rotated.status_code == 200
        assert_401(refresh(two, first), "already used")
        # The family is revoked for both: the refresh token at once (checked in the database)...
        assert_401(refresh(one, rotated.json()), "revoked")
        assert_401(two.get(MODELS, headers=bearer(rotated.json())), "revoked")
        # ...the access token on the other instance after its next read.
        wait_for_fresh_read(one)
        assert_401(one.get(MODELS, headers=bearer(rotated.json())), "revoked")


def test_one_refresh_token_presented_twice_at_once_buys_one_pair_and_then_nothing(viewer: tuple[Settings, str]) -> None:
    settings, key = viewer
    with open_client(settings) as one, open_client(settings) as two:
        pair = login(one, key)
        answers: list[Any] = []
        start = threading.Barrier(2)

        def present(client: TestClient) -> None:
            start.wait()
            answers.append(refresh(client, pair))

        threads = [threading.Thread(target=present, args=(client,)) for client in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(a.status_code for a in answers) == [200, 401]
        winner = next(a for a in answers if a.status_code == 200).json()
        # The second use revoked the family, the winner's new pair included.
        assert_401(refresh(one, winner))
        assert_401(refresh(two, winner))


def test_logout_and_refresh_answer_503_when_the_database_cannot_be_written(
    migrated_database: DatabaseSettings, viewer: tuple[Settings, str]
) -> None:
    settings, key = viewer
    with open_client(settings) as client:
        pair = login(client, key)
        undo = refuse_inserts(migrated_database, "revoked_token_families")
        undo += refuse_inserts(migrated_database, "refresh_token_uses")
        for response in (client.post("/api/v1/auth/revoke", headers=bearer(pair)), refresh(client, pair)):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert int(response.headers["retry-after"]) > 0
            assert "cannot be written" in response.json()["detail"]
        run_sql(migrated_database, *undo)
        # Nothing was spent or revoked: the same refresh token works once the database does.
        assert refresh(client, pair).status_code == 200
        assert client.post("/api/v1/auth/revoke", headers=bearer(pair)).status_code == 204


def test_access_tokens_fail_closed_when_revocations_cannot_be_read_and_api_keys_do_not(
    migrated_database: DatabaseSettings, viewer: tuple[Settings, str]
) -> None:
    settings, key = viewer
    with open_client(settings) as client:
        pair = login(client, key)
        assert client.get(MODELS, headers=bearer(pair)).status_code == 200
        failures = counter("auth_revocation_refresh_failures_total")
        run_sql(migrated_database, "ALTER TABLE revoked_token_families RENAME TO revoked_token_families_away")
        try:
            # Refused once the worker's list is older than revocation_max_staleness_seconds.
            wait_until(lambda: client.get(MODELS, headers=bearer(pair)).status_code == 503)
            refused = client.get(MODELS, headers=bearer(pair))
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["retry-after"]) > 0
            assert "revocations cannot be checked" in refused.json()["detail"]
            assert counter("auth_revocation_refresh_failures_total") > failures
            assert client.get(MODELS, headers={"X-API-Key": key}).status_code == 200
        finally:
            run_sql(migrated_database, "ALTER TABLE revoked_token_families_away RENAME TO revoked_token_families")
        wait_until(lambda: client.get(MODELS, headers=bearer(pair)).status_code == 200)


def test_a_worker_that_cannot_read_revocations_at_start_refuses_access_tokens_until_it_can(
    migrated_database: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    settings = revocation_settings(migrated_database, redis_settings, revocation_max_staleness_seconds=30.0)
    key = create_key(settings, role="viewer")
    with open_client(settings) as client:
        pair = login(client, key)
    run_sql(migrated_database, "ALTER TABLE revoked_token_families RENAME TO revoked_token_families_away")
    try:
        with open_client(settings) as client:
            # Never read: nothing vouches for the token, however long the staleness allowed.
            assert client.get(MODELS, headers=bearer(pair)).status_code == 503
            assert client.get(MODELS, headers={"X-API-Key": key}).status_code == 200
            run_sql(migrated_database, "ALTER TABLE revoked_token_families_away RENAME TO revoked_token_families")
            wait_until(lambda: client.get(MODELS, headers=bearer(pair)).status_code == 200)
    finally:
        run_sql(
            migrated_database,
            "ALTER TABLE IF EXISTS revoked_token_families_away RENAME TO revoked_token_families"
            if migrated_database.url
            else "SELECT 1",
        )


def test_a_revoked_token_is_refused_even_while_its_claims_are_cached(viewer: tuple[Settings, str]) -> None:
    settings, key = viewer
    with open_client(settings) as one, open_client(settings) as two:
        pair = login(one, key)
        token = pair["access_token"]
        assert one.get(MODELS, headers=bearer(pair)).status_code == 200
        cache = one.app.state.authenticator.verified_tokens
        assert cache.get(token) is not None, "the verified claims were not kept"
        assert two.post("/api/v1/auth/revoke", headers=bearer(pair)).status_code == 204
        wait_for_fresh_read(one)
        # Still cached (the decode is skipped), and refused all the same: revocation is checked on
        # every request, not only when the token is decoded.
        assert cache.get(token) is not None
        assert_401(one.get(MODELS, headers=bearer(pair)), "revoked")
        assert_401(one.get(MODELS, headers=bearer(pair)), "revoked")
