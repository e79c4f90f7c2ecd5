"""Under granian with two workers sharing Redis: the key `serve --demo` prints works, and a rate
limit of N lets exactly N of many concurrent requests through."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import start_server
from tests.integration.security.conftest import TEST_REDIS_URL, flush_prefix

pytestmark = pytest.mark.e2e
LIMIT = 30


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("secured")
    prefix = f"obstest_e2e_{os.getpid()}"
    # A Redis call that times out lets its request through (rate_limit.fail_open, as designed): on
    # a loaded machine the default 0.25 s socket timeout (bounded at 1 s per call) did, and 81
    # requests passed a limit of 30. A 5 s timeout (20 s per call) keeps every request counted;
    # the limit checked is the same.
    (workdir / "api-config.yml").write_text(
        f"redis:\n  key_prefix: {prefix}\n  socket_timeout_seconds: 5\nrate_limit:\n  roles:\n    developer: {LIMIT}\n"
    )
    env = {
        "REDIS_URL": TEST_REDIS_URL,
        "JWT_SECRET": "e2e-jwt-secret-0123456789abcdefghijklmnop",
        "SECRET_KEY": "e2e-secret-key-0123456789abcdefghijklmnop",
    }
    try:
        with start_server(workdir, workers=2, demo_traces=20, env=env) as server:
            yield server.base, server.log
    finally:
        flush_prefix(prefix)


def test_the_printed_demo_key_works_and_exactly_n_requests_pass_across_two_workers(secured) -> None:  # type: ignore[no-untyped-def]
    base, log_path = secured
    match = re.search(r"demo API key \(developer\): (obs_\S+)", log_path.read_text())
    assert match, log_path.read_text()
    key = {"X-API-Key": match.group(1)}
    first = httpx.get(f"{base}/api/v1/traces", params={"limit": 3}, headers=key, timeout=10)
    assert first.status_code == 200 and first.headers["ratelimit-limit"] == str(LIMIT)
    assert first.headers["server"] == "observatory-api"
    assert httpx.get(f"{base}/api/v1/traces", timeout=10).status_code == 401

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            responses = await asyncio.gather(*(client.get(f"{base}/api/v1/models", headers=key) for _ in range(150)))
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    # A request let through because Redis timed out is logged: it names the cause of a miscount.
    fail_open = [line for line in log_path.read_text().splitlines() if "redis unavailable" in line]
    assert statuses.count(200) == LIMIT - 1, (statuses, fail_open)
    assert statuses.count(429) == 150 - (LIMIT - 1)
