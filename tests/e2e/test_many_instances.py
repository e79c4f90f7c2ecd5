"""Three `serve` instances (granian, one worker each) on one PostgreSQL and one Redis, behind
Debian's nginx: what one instance does, every instance sees, and restarting them one at a time
loses nothing (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from observatory_api.settings import DatabaseSettings
from tests.conftest import RUN_ID, _create_database, _drop_database, _pg_url, auth_headers, make_settings
from tests.e2e.fleet import Instances, fleet_env, instance_workdirs, running_instances
from tests.e2e.nginx import LoadBalancer, load_balancer
from tests.e2e.server import RunningServer
from tests.integration.ingest.payloads import new_trace_id, span, trace_request
from tests.integration.security.conftest import TEST_REDIS_URL, flush_prefix

pytestmark = pytest.mark.e2e
INSTANCES = 3
DEVELOPER_LIMIT = 40
ADMIN = auth_headers(make_settings(DatabaseSettings()), "admin")
SPANS_PER_EXPORT = 5


@dataclass
class Fleet:
    database_url: str
    balancer: LoadBalancer
    running: Instances

    @property
    def instances(self) -> list[RunningServer]:
        return self.running.servers

    def cli(self, *args: str) -> str:
        """The CLI with the instances' own configuration (same database, Redis and key prefix)."""
        done = subprocess.run(
            [sys.executable, "-m", "observatory_api", *args],
            cwd=self.running.workdirs[0],
            env=self.running.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def restart(self, index: int) -> None:
        self.running.restart(index)


@pytest.fixture(scope="module")
def fleet(pg_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    database = f"observatory_test_{RUN_ID}_fleet_{uuid.uuid4().hex[:6]}"
    asyncio.run(_create_database(database, template=pg_template))
    prefix = f"obstest_fleet_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    config = (
        f"redis:\n  key_prefix: {prefix}\n"
        # A loaded machine must not turn a slow Redis answer into fail-open (the exact-limit test).
        "  socket_timeout_seconds: 5\n"
        f"rate_limit:\n  roles:\n    developer: {DEVELOPER_LIMIT}\n"
        # nginx is the proxy: the client's address comes from its X-Forwarded-For.
        "server:\n  trusted_proxies: ['127.0.0.1/32']\n"
    )
    env = fleet_env(_pg_url(database), TEST_REDIS_URL, INGEST_ENABLED="true")
    workdirs = instance_workdirs(tmp_path_factory.mktemp("fleet"), INSTANCES, config)
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: asyncio.run(_drop_database(database)))
        stack.callback(flush_prefix, prefix)
        running = stack.enter_context(running_instances(workdirs, env))
        balancer = stack.enter_context(load_balancer(tmp_path_factory.mktemp("nginx"), running.ports))
        yield Fleet(_pg_url(database), balancer, running)


def _requests_counted(instance: RunningServer, route: str) -> float:
    scraped = httpx.get(instance.metrics, timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return total


def test_requests_are_spread_and_prometheus_sees_each_instance_on_its_own(fleet: Fleet) -> None:
    route = "/api/v1/sessions"
    before = [_requests_counted(instance, route) for instance in fleet.instances]
    for _ in range(30):
        answer = httpx.get(f"{fleet.balancer.base}{route}", params={"limit": 1}, headers=ADMIN, timeout=20)
        assert answer.status_code == 200, answer.text
    counted = [_requests_counted(instance, route) - b for instance, b in zip(fleet.instances, before, strict=True)]
    # Each instance counts only what it served, and together they counted every request once.
    assert sum(counted) == 30, counted
    assert all(count > 0 for count in counted), counted
    answered_by = Counter(fleet.balancer.upstreams()[-30:])
    assert sorted(answered_by.values()) == sorted(int(c) for c in counted)


def test_a_rate_limit_is_exact_across_instances(fleet: Fleet) -> None:
    key = fleet.cli("keys", "create", "--name", "fleet-limit", "--role", "developer")

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=60, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            answers = await asyncio.gather(
                *(client.get(f"{fleet.balancer.base}/api/v1/models", headers={"X-API-Key": key}) for _ in range(120))
            )
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == DEVELOPER_LIMIT, Counter(statuses)
    assert statuses.count(429) == 120 - DEVELOPER_LIMIT, Counter(statuses)
    # The burst really was spread over the instances.
    assert len(set(fleet.balancer.upstreams()[-120:])) == INSTANCES


def test_a_revoked_key_is_refused_by_every_instance_at_once(fleet: Fleet) -> None:
    key = fleet.cli("keys", "create", "--name", "fleet-revoke", "--role", "viewer")
    headers = {"X-API-Key": key}
    for instance in fleet.instances:  # every instance has looked the key up (and cached it)
        assert httpx.get(f"{instance.base}/api/v1/models", headers=headers, timeout=10).status_code == 200
    fleet.cli("keys", "revoke", key.split("_")[1])
    refused = [httpx.get(f"{i.base}/api/v1/models", headers=headers, timeout=10).status_code for i in fleet.instances]
    assert refused == [401] * INSTANCES


def test_a_cache_purge_on_one_instance_empties_the_cache_of_all(fleet: Fleet) -> None:
    first, second, third = fleet.instances
    url = "/api/v1/traces"
    params = {"limit": 2, "service": f"nothing-{uuid.uuid4().hex[:8]}"}  # a query of this test alone

    def cache_state(instance: RunningServer) -> str:
        answer = httpx.get(f"{instance.base}{url}", params=params, headers=ADMIN, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-cache"]

    assert cache_state(first) == "miss"
    assert cache_state(second) == "hit"  # stored by the first, served by the second
    purged = httpx.post(f"{third.base}/api/v1/admin/cache/purge", headers=ADMIN, timeout=10)
    assert purged.status_code in (200, 201), purged.text
    assert [cache_state(first), cache_state(second)] == ["miss", "hit"]


@dataclass
class Traffic:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    acknowledged: list[bytes] = field(default_factory=list)


def _send_traffic(base: str, ingest_key: str, stop: threading.Event, traffic: Traffic) -> None:
    """GETs and OTLP exports through nginx until told to stop (bounded: 4,000 requests, 180 s)."""
    deadline = time.monotonic() + 180
    with httpx.Client(timeout=30) as client:
        for number in range(4000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                if number % 2:
                    answer = client.get(f"{base}/api/v1/models", headers=ADMIN)
                else:
                    trace_id = new_trace_id()
                    body = trace_request([span(trace_id, i) for i in range(SPANS_PER_EXPORT)]).SerializeToString()
                    answer = client.post(
                        f"{base}/v1/traces",
                        content=body,
                        headers={"x-api-key": ingest_key, "content-type": "application/x-protobuf"},
                    )
                    if answer.status_code == 200:
                        traffic.acknowledged.append(trace_id)
            except httpx.HTTPError as error:
                traffic.failures.append(repr(error))
                continue
            traffic.statuses[answer.status_code] += 1


async def _stored(database_url: str, trace_ids: list[bytes]) -> tuple[int, int]:
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans "
                        "WHERE trace_id = ANY(CAST(:ids AS text[]))"
                    ),
                    {"ids": [trace_id.hex() for trace_id in trace_ids]},
                )
            ).one()
    finally:
        await engine.dispose()
    return int(row[0]), int(row[1])


def test_a_rolling_restart_loses_no_request_and_no_acknowledged_span(fleet: Fleet) -> None:
    ingest_key = fleet.cli("keys", "create", "--name", "fleet-ingest", "--role", "ingest")
    traffic, stop = Traffic(), threading.Event()
    sender = threading.Thread(target=_send_traffic, args=(fleet.balancer.base, ingest_key, stop, traffic))
    sender.start()
    try:
        time.sleep(1)
        for index in range(INSTANCES):  # one at a time: the others keep serving
            fleet.restart(index)
            time.sleep(1)
    finally:
        stop.set()
        sender.join(timeout=60)
    assert not traffic.failures, traffic.failures[:5]
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert sum(traffic.statuses.values()) > 50, traffic.statuses  # the restarts happened under traffic
    stored, distinct = asyncio.run(_stored(fleet.database_url, traffic.acknowledged))
    assert stored == distinct == SPANS_PER_EXPORT * len(traffic.acknowledged)
