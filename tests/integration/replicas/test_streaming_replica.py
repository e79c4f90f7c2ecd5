"""Reads against a real streaming replica (tests/replica.py): served by it, taken off it when it
lags past the bound or dies, put back when it recovers; never a 5xx, never an answer older than
the bound allows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from observatory_api.app import create_app
from observatory_api.db.engine import create_engine, database_url
from observatory_api.demo.generator import generate
from observatory_api.settings import DatabaseSettings, RateLimitSettings, Settings
from observatory_api.storage.writer import TelemetryWriter
from tests.conftest import _pg_url, auth_headers, make_settings
from tests.replica import StreamingReplica
from tests.timescaledb import ON_TIMESCALEDB

UNLIMITED = RateLimitSettings(roles={"admin": 1_000_000, "developer": 1_000_000, "viewer": 1_000_000})


def _settings(database: str, replica: StreamingReplica, *, max_lag: float = 10, interval: float = 0.25) -> Settings:
    return make_settings(
        DatabaseSettings(
            url=_pg_url(database),
            replica_urls=(replica.url(database),),
            max_replica_lag_seconds=max_lag,
            replica_check_interval_seconds=interval,
        ),
        rate_limit=UNLIMITED,
    )


@contextmanager
def _client(settings: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(settings, "developer"))
        yield client


async def _write_trace_on_primary(database: str) -> str:
    """One new trace written straight to the primary; its id."""
    records = [span for spans, _logs in generate(traces=1, seed=11, end=datetime.now(UTC), days=1) for span in spans]
    owner = DatabaseSettings(url=_pg_url(database))
    engine = create_engine(owner, database_url(owner))
    try:
        await TelemetryWriter(engine).write_spans(records)
    finally:
        await engine.dispose()
    return records[0].trace_id


def _trace_query(trace_id: str, fields: str = "id") -> dict[str, Any]:
    return {"query": f"query ($id: String!) {{ trace(id: $id) {{ {fields} }} }}", "variables": {"id": trace_id}}


def _replica_state(client: TestClient[Any]) -> dict[str, Any]:
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text  # replicas never make the service unready
    (state,) = ready.json()["replicas"]
    return dict(state)


def _gauge(name: str, replica: StreamingReplica) -> float | None:
    return REGISTRY.get_sample_value(name, {"replica": replica.name})


async def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s")
        await asyncio.sleep(0.05)


async def _in_rotation(client: TestClient[Any]) -> None:
    """Wait for the replica to be in rotation: on this shared machine, other tests' writes can hold
    a fresh standby's replay back for a moment."""
    await _wait_for(lambda: _replica_state(client)["status"] == "ok", 30, "the replica never came into rotation")


async def _connections_on(replica: StreamingReplica, database: str) -> int:
    connection = await replica.connection()
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'observatory-api'",
                database,
            )
        )
    finally:
        await connection.close()


async def test_reads_are_served_by_the_replica(replicated_database: str, standby: StreamingReplica) -> None:
    with _client(_settings(replicated_database, standby)) as client:
        assert _replica_state(client) == {
            "replica": standby.name,
            "status": "ok",
            "lag_seconds": pytest.approx(0, abs=1),
        }
        listed = client.get("/api/v1/traces", params={"from": "2026-11-18T00:00:00Z", "to": "2026-11-20T00:00:00Z"})
        assert listed.status_code == 200 and len(listed.json()["data"]) == 5
        assert await _connections_on(standby, replicated_database) >= 1
        # A trace written on the primary while the replica does not replay: the API does not see
        # it, because the replica answers (within the lag bound); once replayed, it does.
        await standby.pause_replay()
        trace_id = await _write_trace_on_primary(replicated_database)
        assert client.get(f"/api/v1/traces/{trace_id}").status_code == 404
        graphql = client.post("/graphql", json=_trace_query(trace_id)).json()
        assert graphql == {"data": {"trace": None}}
        await standby.resume_replay()
        await standby.caught_up()
        assert client.get(f"/api/v1/traces/{trace_id}").status_code == 200
        assert _gauge("db_replica_up", standby) == 1


async def test_a_lagging_replica_is_taken_out_and_no_answer_is_older_than_the_bound(
    replicated_database: str, standby: StreamingReplica
) -> None:
    max_lag, interval = 5.0, 0.25
    with _client(_settings(replicated_database, standby, max_lag=max_lag, interval=interval)) as client:
        await _in_rotation(client)
        await standby.pause_replay()
        trace_id = await _write_trace_on_primary(replicated_database)
        written_at = time.monotonic()
        answers: list[tuple[float, int]] = []  # (seconds after the write the request started, status)
        while time.monotonic() - written_at < max_lag + 3:
            started = time.monotonic() - written_at
            answers.append((started, client.get(f"/api/v1/traces/{trace_id}").status_code))
            await asyncio.sleep(0.02)
        stale = [after for after, status in answers if status == 404]
        assert {status for _after, status in answers} == {404, 200}, answers
        assert answers[0][1] == 404  # the replica served while within the bound
        # A 404 started `after` seconds after the write is at least that old: never past the bound.
        assert max(stale) <= max_lag, answers
        assert all(status == 200 for after, status in answers if after > max(stale))
        state = _replica_state(client)
        assert state["status"] == "lagging"
        assert state["lag_seconds"] > max_lag
        assert state["detail"].startswith("behind by ")
        assert _gauge("db_replica_up", standby) == 0
        assert (_gauge("db_replica_lag_seconds", standby) or 0) > max_lag

        await standby.resume_replay()
        await _wait_for(lambda: _replica_state(client)["status"] == "ok", 15, "the replica was not put back")
        assert _gauge("db_replica_up", standby) == 1
        assert (_gauge("db_replica_lag_seconds", standby) or 0) <= max_lag
        assert client.get(f"/api/v1/traces/{trace_id}").status_code == 200


@pytest.mark.parametrize("api", ["rest", "graphql"])
async def test_a_read_on_a_replica_that_died_is_answered_from_the_primary(
    api: str, replicated_database: str, standby: StreamingReplica
) -> None:
    # No check between the kill and the read (only the one at start-up, valid for a minute): the
    # read itself meets the dead replica.
    with _client(_settings(replicated_database, standby, max_lag=60, interval=3600)) as client:
        await _in_rotation(client)
        listed = client.get("/api/v1/traces", params={"from": "2026-11-18T00:00:00Z", "to": "2026-11-20T00:00:00Z"})
        trace_id = listed.json()["data"][0]["trace_id"]
        assert _replica_state(client)["status"] == "ok"
        retries = REGISTRY.get_sample_value("db_replica_read_retries_total") or 0
        standby.stop()
        if api == "rest":
            answer = client.get(f"/api/v1/traces/{trace_id}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["trace_id"] == trace_id
        else:
            answer = client.post("/graphql", json=_trace_query(trace_id))
            assert answer.status_code == 200
            assert answer.json() == {"data": {"trace": {"id": trace_id}}}
        state = _replica_state(client)
        assert state["status"] == "down"
        assert state["detail"].startswith("a read failed (")
        assert _gauge("db_replica_up", standby) == 0
        assert REGISTRY.get_sample_value("db_replica_read_retries_total") == retries + 1


async def test_killing_the_replica_under_load_gives_no_5xx_and_it_comes_back(
    replicated_database: str, standby: StreamingReplica
) -> None:
    with _client(_settings(replicated_database, standby, interval=0.25)) as client:
        await _in_rotation(client)
        listed = client.get("/api/v1/traces", params={"from": "2026-11-18T00:00:00Z", "to": "2026-11-20T00:00:00Z"})
        trace_ids = [trace["trace_id"] for trace in listed.json()["data"]]
        statuses: list[int] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            turn = 0
            while not stop.is_set():
                trace_id = trace_ids[(worker + turn) % len(trace_ids)]
                turn += 1
                if turn % 2:
                    statuses.append(client.get(f"/api/v1/traces/{trace_id}").status_code)
                else:
                    answer = client.post("/graphql", json=_trace_query(trace_id, "id spans { id }"))
                    statuses.append(answer.status_code if "errors" not in answer.json() else 599)

        workers = [asyncio.create_task(asyncio.to_thread(load, worker)) for worker in range(4)]
        await asyncio.sleep(1.0)
        before_kill = len(statuses)
        await asyncio.to_thread(standby.stop)
        await asyncio.sleep(1.5)
        down = _replica_state(client)
        after_kill = len(statuses)
        await asyncio.to_thread(standby.start)
        await _wait_for(lambda: _replica_state(client)["status"] == "ok", 20, "the restarted replica was not put back")
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)

    assert before_kill > 0 and after_kill > before_kill
    assert set(statuses) == {200}, {status: statuses.count(status) for status in set(statuses)}
    assert down["status"] == "down"


async def test_the_standby_is_of_the_tests_own_server(replicated_database: str, standby: StreamingReplica) -> None:
    """In CI's TimescaleDB pass the standby is TimescaleDB's: the extension preloaded, the hypertables
    and continuous aggregates replicated, and the metric answers read from them on the standby."""
    connection = await standby.connection(replicated_database)
    try:
        assert await connection.fetchval("SELECT pg_is_in_recovery()")
        preloaded = await connection.fetchval("SELECT current_setting('shared_preload_libraries')")
        hypertables = await connection.fetchval(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        ) and await connection.fetchval("SELECT count(*) FROM timescaledb_information.hypertables")
    finally:
        await connection.close()
    if ON_TIMESCALEDB:
        assert "timescaledb" in preloaded and hypertables == 2  # spans and logs
    else:
        assert "timescaledb" not in preloaded and not hypertables
    with _client(_settings(replicated_database, standby)) as client:
        await _in_rotation(client)
        body = {
            "metrics": [{"id": "request_count"}],
            "group_by": ["model"],
            "from": "2026-11-18T00:00:00Z",
            "to": "2026-11-20T00:00:00Z",
        }
        answer = client.post("/api/v1/metrics/query", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["series"]
        assert await _connections_on(standby, replicated_database) >= 1
