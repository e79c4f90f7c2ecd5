"""GroupCommit: queued batches share a commit; a failing group is retried batch by batch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from observatory_api.storage.group_commit import GroupCommit


class Recorder:
    """A commit function that records its groups; batches holding "bad" fail."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()

    async def commit(self, batches: Sequence[str]) -> list[int]:
        self.groups.append(list(batches))
        await self.release.wait()
        if any("bad" in batch for batch in batches):
            raise ValueError("bad batch")
        return [len(batch) for batch in batches]


async def started(group_commit: GroupCommit[str, int], batch: str) -> asyncio.Task[int]:
    task = asyncio.create_task(group_commit.submit(batch, size=len(batch)))
    await asyncio.sleep(0)  # queued, in submission order
    return task


async def test_batches_queued_during_a_commit_share_the_next_one() -> None:
    recorder = Recorder()
    group_commit = GroupCommit(recorder.commit, max_items=100)
    first = await started(group_commit, "a")
    rest = [await started(group_commit, batch) for batch in ("bb", "ccc", "dddd")]
    recorder.release.set()

    assert await first == 1
    assert [await task for task in rest] == [2, 3, 4]
    assert recorder.groups == [["a"], ["bb", "ccc", "dddd"]]


async def test_groups_stay_under_the_size_limit() -> None:
    recorder = Recorder()
    group_commit = GroupCommit(recorder.commit, max_items=5)
    tasks = [await started(group_commit, batch) for batch in ("a", "bb", "ccc", "dddd", "eeeeee")]
    recorder.release.set()

    assert [await task for task in tasks] == [1, 2, 3, 4, 6]
    # A batch larger than the limit still goes, alone.
    assert recorder.groups == [["a"], ["bb", "ccc"], ["dddd"], ["eeeeee"]]


async def test_a_failing_batch_fails_alone_and_the_others_are_stored() -> None:
    recorder = Recorder()
    group_commit = GroupCommit(recorder.commit, max_items=100)
    first = await started(group_commit, "a")
    good, bad, other = [await started(group_commit, batch) for batch in ("bb", "bad", "cc")]
    recorder.release.set()

    assert await first == 1
    assert await good == 2
    with pytest.raises(ValueError, match="bad batch"):
        await bad
    assert await other == 2
    # The failed group, then each of its batches in its own transaction.
    assert recorder.groups == [["a"], ["bb", "bad", "cc"], ["bb"], ["bad"], ["cc"]]


async def test_an_error_no_batch_caused_fails_the_whole_group_at_once() -> None:
    recorder = Recorder()
    # As the writer's predicate says of a timeout: retrying each batch alone would wait again.
    group_commit = GroupCommit(recorder.commit, max_items=100, retry_alone=lambda error: False)
    first = await started(group_commit, "a")
    tasks = [await started(group_commit, batch) for batch in ("bb", "bad", "cc")]
    recorder.release.set()

    assert await first == 1
    for task in tasks:
        with pytest.raises(ValueError, match="bad batch"):
            await task
    assert recorder.groups == [["a"], ["bb", "bad", "cc"]]


async def test_batches_of_a_cancelled_leader_are_committed_by_the_next() -> None:
    recorder = Recorder()
    group_commit = GroupCommit(recorder.commit, max_items=100)
    first = await started(group_commit, "a")
    second, third = [await started(group_commit, batch) for batch in ("bb", "ccc")]
    await asyncio.sleep(0)
    first.cancel()  # its caller went away in the middle of the commit: nothing was answered
    with pytest.raises(asyncio.CancelledError):
        await first
    recorder.release.set()

    assert (await second, await third) == (2, 3)
    # The unanswered batch of the cancelled group goes again, with the ones that queued meanwhile.
    assert recorder.groups == [["a"], ["a", "bb", "ccc"]]


async def test_a_caller_behind_a_cancelled_waiter_still_gets_its_answer() -> None:
    recorder = Recorder()
    group_commit = GroupCommit(recorder.commit, max_items=10)
    first = await started(group_commit, "aaaaa")
    gone = await started(group_commit, "bbbbbbbb")  # waits for the turn, then goes away
    last = await started(group_commit, "ccccc")
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    recorder.release.set()

    assert await first == 5
    # The cancelled caller's batch heads the queue and fills a group alone; the next is "ccccc".
    assert await last == 5
    assert recorder.groups == [["aaaaa"], ["bbbbbbbb"], ["ccccc"]]


async def test_the_failure_of_a_batch_whose_caller_went_away_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    group_commit = GroupCommit(recorder.commit, max_items=100)
    first = await started(group_commit, "a")
    gone = await started(group_commit, "bad")
    last = await started(group_commit, "cc")
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    with caplog.at_level(logging.WARNING, logger="observatory_api.storage.group_commit"):
        recorder.release.set()
        assert (await first, await last) == (1, 2)
        await asyncio.sleep(0)  # the orphan's done-callback is scheduled, not yet run

    # The orphan was still committed with "cc", failed, and "cc" was then stored alone.
    assert recorder.groups == [["a"], ["bad", "cc"], ["bad"], ["cc"]]
    assert "a batch whose caller went away failed to commit" in caplog.text
