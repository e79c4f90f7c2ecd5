"""The read router without a standby: rotation, fallback to the primary, and what its check makes
of a server that is not a standby or not there (the real replica: test_streaming_replica.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.db.replicas import READ_ATTEMPT, ReadAttempt, ReadRouter, Replica, build_read_router, replica_name
from observatory_api.observability.replicas import publish_replica
from observatory_api.settings import DatabaseSettings
from tests.conftest import PLAIN_POSTGRES_URL, auth_headers, make_settings

# What the router's on_change saw, in order ("host:port=status").
CHANGES: list[str] = []
SETTINGS = DatabaseSettings(url=PLAIN_POSTGRES_URL, pool_size=1, max_overflow=0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _make_engine(url: URL, *, pool_size: int | None = None, max_overflow: int | None = None) -> AsyncEngine:
    return create_engine(SETTINGS, url, readonly=True, pool_size=pool_size, max_overflow=max_overflow)


def _record(replica: Replica) -> None:
    """The app's on_change (the gauges), and the change kept for the tests."""
    publish_replica(replica)
    CHANGES.append(f"{replica.name}={replica.status}")


@pytest_asyncio.fixture
async def router() -> AsyncIterator[ReadRouter]:
    """Replicas named after the primary itself (not a standby) and a port nobody listens on."""
    primary_url = database_url(SETTINGS)
    nowhere = primary_url.set(port=_free_port(), password="never-shown")
    CHANGES.clear()
    router = build_read_router(
        _make_engine(primary_url),
        [primary_url, nowhere],
        _make_engine,
        primary_url=primary_url,
        max_lag_seconds=5,
        check_interval_seconds=0.2,
        on_change=_record,
    )
    yield router
    await router.dispose()
    await router.primary.dispose()


def test_replica_names_are_host_and_port_only() -> None:
    assert replica_name("postgresql://user:secret@replica-1.internal:5433/db") == "replica-1.internal:5433"
    assert replica_name(make_url("postgresql://replica-2/db")) == "replica-2:5432"


async def test_a_primary_named_as_replica_and_an_absent_server_are_both_kept_out(router: ReadRouter) -> None:
    assert [state.status for state in router.states()] == ["down", "down"]  # before any check
    await router.check()
    not_standby, absent = router.states()
    assert not_standby.status == "down"
    assert not_standby.detail == "not a standby (pg_is_in_recovery() is false)"
    assert absent.status == "down"
    assert absent.detail is not None and absent.detail.startswith("unreachable (")
    assert "never-shown" not in repr(router.states())
    # Nothing in rotation: every read goes to the primary.
    assert {router.engine() for _ in range(4)} == {router.primary}


async def test_reads_take_the_healthy_replicas_in_turn_and_the_retry_takes_the_primary(router: ReadRouter) -> None:
    first, second = router.replicas
    first.status = second.status = "ok"
    first.holds_until = second.holds_until = time.monotonic()
    picks = [router.engine() for _ in range(6)]
    assert picks.count(first.engine) == 3 and picks.count(second.engine) == 3
    assert picks[0] is not picks[1]
    second.status = "lagging"
    assert {router.engine() for _ in range(3)} == {first.engine}
    # Still "ok" at its last check, but that check is older than the bound allows now: skipped.
    first.holds_until = time.monotonic() - 5.5
    assert router.engine() is router.primary
    first.holds_until = time.monotonic() - 4.5
    assert router.engine() is first.engine
    token = READ_ATTEMPT.set(ReadAttempt(on_primary=True))
    try:
        assert router.engine() is router.primary
    finally:
        READ_ATTEMPT.reset(token)


async def test_a_read_that_loses_its_replica_takes_it_out_and_marks_the_request(router: ReadRouter) -> None:
    absent: Replica = router.replicas[1]
    absent.status, absent.holds_until = "ok", time.monotonic()
    attempt = ReadAttempt()
    token = READ_ATTEMPT.set(attempt)
    try:
        with pytest.raises(ConnectionRefusedError) as raised:
            async with absent.engine.connect():
                pass
    finally:
        READ_ATTEMPT.reset(token)
    assert "never-shown" not in str(absent.detail)
    assert attempt.replica_failed, raised.value
    assert router.states()[1].status == "down"
    assert absent.detail is not None and absent.detail.startswith("a read failed (")
    assert f"{absent.name}=down" in CHANGES


async def test_both_gauges_exist_at_zero_from_the_start(router: ReadRouter) -> None:
    for replica in router.replicas:
        for gauge in ("db_replica_up", "db_replica_lag_seconds"):
            assert REGISTRY.get_sample_value(gauge, {"replica": replica.name}) == 0, (gauge, replica.name)
    await router.check()  # both down, lag unknown: still 0, not missing
    assert REGISTRY.get_sample_value("db_replica_up", {"replica": router.replicas[1].name}) == 0
    assert REGISTRY.get_sample_value("db_replica_lag_seconds", {"replica": router.replicas[1].name}) == 0


def test_a_request_picks_its_read_engine_once(tmp_path: Path) -> None:
    """A GraphQL query builds six repositories: all of them read through one engine (one replica)."""
    settings = make_settings(DatabaseSettings(sqlite_path=str(tmp_path / "observatory.db")))
    app = create_app(settings)
    with TestClient(app) as client:
        router: ReadRouter = app.state.resources.read_router
        picks: list[AsyncEngine] = []
        pick = router.engine

        def counted() -> AsyncEngine:
            picks.append(pick())
            return picks[-1]

        router.engine = counted  # type: ignore[method-assign]
        headers = auth_headers(settings, "developer")
        query = {"query": "{ traces { id spans { id } } sessions { id } }"}
        answer = client.post("/graphql", json=query, headers=headers).json()
        assert answer == {"data": {"traces": [], "sessions": []}}
        assert len(picks) == 1
        assert client.get("/api/v1/traces", headers=headers).status_code == 200
        assert len(picks) == 2
