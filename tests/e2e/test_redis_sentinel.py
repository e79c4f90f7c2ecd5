"""The real server (granian, 2 workers) on Redis through Sentinel, its primary killed under a
bounded request loop: what users see. Every request is answered (rate limits fail open while no
primary answers), the limits resume on the new primary with the counts it replicated, and /ready
is 503 only until the Sentinels have promoted the replica. The figures are printed (run with -s);
docs/redis.md quotes them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import AUTH, start_server
from tests.sentinel_group import REDIS_PASSWORD, SENTINEL_PASSWORD, sentinel_group

pytestmark = pytest.mark.e2e

CLIENTS = 4
CONFIG = "rate_limit:\n  window: 600\n  roles:\n    developer: 1000000\n"
COUNTER = "observatory:ratelimit:caller:jwt:test-developer"
# After the kill: the loop goes on this long after the limits resumed, and never longer than MAX.
AFTER_RESUME_SECONDS = 2.0
MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    at: float  # seconds since the primary was killed (negative: before)
    status: int
    count: int | None  # this request's rate-limit count; None when served without counting


@dataclass
class Run:
    answers: list[Answer]
    ready: list[tuple[float, int]]
    promoted_at: float


async def drive(base: str, kill: object, promoted: object) -> Run:
    """CLIENTS request loops and one /ready poller; `kill()` after a second of traffic, then
    `promoted()` (blocking, in a thread) returns when the Sentinels name the new primary."""
    answers: list[Answer] = []
    ready: list[tuple[float, int]] = []
    started = time.monotonic()
    killed_at: float | None = None
    done = asyncio.Event()

    def now() -> float:
        return time.monotonic() - (killed_at if killed_at is not None else started + 1e9)

    async def requests(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            response = await client.get(f"{base}/api/v1/models", headers=AUTH)
            limit, remaining = response.headers.get("ratelimit-limit"), response.headers.get("ratelimit-remaining")
            count = int(limit) - int(remaining) if limit and remaining else None
            # The caller's own budget, never the client IP's anonymous one (a request served without
            # counting was once counted there by the hook for unrouted requests).
            assert limit in (None, "1000000"), dict(response.headers)
            answers.append(Answer(now(), response.status_code, count))

    async def readiness(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            ready.append((now(), (await client.get(f"{base}/ready")).status_code))
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=10) as client:
        loops = [asyncio.create_task(requests(client)) for _ in range(CLIENTS)]
        loops.append(asyncio.create_task(readiness(client)))
        try:
            await asyncio.sleep(1.0)
            killed_at = time.monotonic()
            kill()  # type: ignore[operator]
            await asyncio.to_thread(promoted)  # type: ignore[arg-type]
            promoted_at = time.monotonic() - killed_at
            while time.monotonic() - killed_at < MAX_SECONDS:
                await asyncio.sleep(0.1)
                counted = [a.at for a in answers if a.count is not None and a.at > promoted_at]
                settled = max(promoted_at, _resumed_at(answers))
                if counted and time.monotonic() - killed_at - settled > AFTER_RESUME_SECONDS:
                    break
        finally:
            done.set()
            await asyncio.gather(*loops)
    return Run(answers, ready, promoted_at)


def _resumed_at(answers: list[Answer]) -> float:
    """When the last request after the kill was served without counting (0: none was)."""
    return max((a.at for a in answers if a.at > 0 and a.count is None), default=0.0)


def test_killing_the_primary_under_requests_every_request_is_answered_and_limits_resume(tmp_path: Path) -> None:
    (tmp_path / "api-config.yml").write_text(CONFIG)
    with sentinel_group(tmp_path) as group:
        old = group.current_primary()
        with start_server(tmp_path, workers=2, demo_traces=20, env=group.environment()) as server:
            run = asyncio.run(
                drive(server.base, kill=lambda: group.kill(old), promoted=lambda: group.wait_for_new_primary(old))
            )
        new = group.current_primary()
    answers = run.answers
    statuses = Counter(a.status for a in answers)
    after_kill = [a for a in answers if a.at > 0]
    uncounted = [a for a in after_kill if a.count is None]
    resumed_at = _resumed_at(answers)
    ready_503 = [at for at, status in run.ready if status == 503 and at > 0]
    print(
        f"\nsentinel failover: {len(answers)} answers {dict(statuses)}; primary killed at 0 s, "
        f"new primary named at {run.promoted_at:.2f} s; {len(uncounted)} answers served without counting "
        f"(rate limits fail open) until {resumed_at:.2f} s; /ready 503 from "
        f"{min(ready_503, default=0):.2f} s until {max(ready_503, default=0):.2f} s"
    )
    assert new is not old
    log = (tmp_path / "server.log").read_text()
    assert SENTINEL_PASSWORD not in log and REDIS_PASSWORD not in log
    # Every request answered, all of them 200: no 5xx, no 429 while Redis changed hands.
    assert set(statuses) == {200}, statuses
    # Rate limits failed open while no primary answered, then resumed on the new primary...
    assert uncounted, "the kill went unnoticed: the test did not exercise a failover"
    resumed = [a.count for a in after_kill if a.at > resumed_at and a.count is not None]
    assert resumed, "rate limits never resumed"
    # ...continuing from the counts it had replicated (no window started afresh).
    before = [a.count for a in answers if a.at < 0 and a.count is not None]
    assert before and min(resumed) > max(before) - CLIENTS * 2, (max(before), min(resumed))
    # /ready told the orchestrator while Redis was gone, and was 200 again before the end.
    assert ready_503 and run.ready[-1][1] == 200
    # Until the replica is promoted at most: the limits fail open no longer than it takes to find it.
    assert resumed_at < run.promoted_at + 4.0, (resumed_at, run.promoted_at)


def planned_failover(workdir: Path) -> tuple[Run, int]:
    """A server under the request loops, `SENTINEL FAILOVER` after a second: the answers, and the
    new primary's counter at the end."""
    (workdir / "api-config.yml").write_text(CONFIG)
    with sentinel_group(workdir) as group:
        old = group.current_primary()
        with start_server(workdir, workers=2, demo_traces=20, env=group.environment()) as server:
            run = asyncio.run(drive(server.base, kill=group.failover, promoted=lambda: group.wait_for_new_primary(old)))
        new = group.current_primary()
        assert new is not old
        return run, int(group.data_client(new).get(COUNTER) or 0)


def test_a_planned_failover_under_requests_counts_every_request_on_one_primary_or_the_other(tmp_path: Path) -> None:
    run, stored = planned_failover(tmp_path)
    answers = run.answers
    statuses = Counter(a.status for a in answers)
    counted = [a for a in answers if a.count is not None]
    lost = len(counted) - stored
    print(
        f"\nsentinel planned failover: {len(answers)} answers {dict(statuses)}; new primary named at "
        f"{run.promoted_at:.2f} s; {len(answers) - len(counted)} served without counting; {len(counted)} counted, "
        f"{stored} of them on the new primary at the end ({lost} counted on the old primary after the promotion, lost)"
    )
    assert set(statuses) == {200}, statuses
    # None served without counting: the old primary answers until the workers leave it.
    assert len(counted) == len(answers)
    # Counted after the switch...
    assert [a for a in counted if a.at > run.promoted_at + 1.0]
    # ...never twice: the new primary holds no more increments than answers were counted.
    assert 0 <= lost < len(counted), (lost, len(counted))
    # Once both workers have switched, everything is counted on the new primary, on one counter:
    # the counts answered in the last second are distinct and the newest of them run without a
    # gap up to the new primary's counter. (A worker left on the old primary, as the connection in
    # use at the switch once was, answers from a second counter that the new primary never holds.)
    end = max(a.at for a in answers)
    late = sorted(a.count for a in counted if a.at > end - 1.0 and a.count is not None)
    assert late and run.promoted_at + 1.0 < end - 1.0, (run.promoted_at, end)
    assert len(set(late)) == len(late), late
    newest = late[len(late) // 2 :]
    assert newest == list(range(stored - len(newest) + 1, stored + 1)), (stored, newest[-5:])
