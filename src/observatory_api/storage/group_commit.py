"""Group commit: the batches of concurrent callers share one write transaction.

A caller that finds a transaction in progress queues its batch; the next transaction takes every
queued batch at once. Each caller is answered only after the transaction holding its rows has
committed, so a success still means "stored" (at-least-once delivery is unchanged). A group that
fails is retried batch by batch, so one bad batch fails alone and the others are still stored;
unless the error is one no batch caused (a timeout, a lost connection: `retry_alone` says), which
every batch of the group then gets at once instead of waiting for it again one by one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

B = TypeVar("B")
R = TypeVar("R")
logger = logging.getLogger("observatory_api.storage.group_commit")

# Writes `batches` in one transaction; returns what each batch newly stored, in order.
CommitGroup = Callable[[Sequence[B]], Awaitable[list[R]]]


@dataclass(slots=True, eq=False)
class _Pending(Generic[B, R]):
    batch: B
    size: int
    answer: asyncio.Future[R]


class GroupCommit(Generic[B, R]):
    """Runs `commit` for queued batches, one group transaction at a time per instance.

    Groups hold at most `max_items` items (a single larger batch still goes alone).
    """

    def __init__(
        self, commit: CommitGroup[B, R], *, max_items: int, retry_alone: Callable[[Exception], bool] = lambda _: True
    ) -> None:
        self._commit = commit
        self._max_items = max_items
        self._retry_alone = retry_alone
        self._queue: deque[_Pending[B, R]] = deque()
        self._turn = asyncio.Lock()  # FIFO: the next holder commits whatever has queued meanwhile

    async def submit(self, batch: B, *, size: int) -> R:
        """Store `batch` of `size` items (in a group); returns what it newly stored, or raises its
        own error."""
        pending: _Pending[B, R] = _Pending(batch, size, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        try:
            async with self._turn:
                # Else an earlier holder committed it in its group. More than one group can come
                # first: a caller cancelled while waiting leaves its batch at the head of the queue.
                while not pending.answer.done():
                    await self._commit_next_group()
        except asyncio.CancelledError:
            # The caller went away; a later holder may still commit its batch (at-least-once is
            # unchanged). Nobody reads that answer: a failure is logged here, not by asyncio as
            # "Future exception was never retrieved".
            pending.answer.add_done_callback(_log_unread_failure)
            raise
        return pending.answer.result()

    async def _commit_next_group(self) -> None:
        group = self._take_group()
        try:
            await self._commit_group(group)
        finally:
            # Cancelled half-way (the caller went away): the unanswered go to the next holder.
            self._queue.extendleft(reversed([p for p in group if not p.answer.done()]))

    def _take_group(self) -> list[_Pending[B, R]]:
        group = [self._queue.popleft()]
        size = group[0].size
        while self._queue and size + self._queue[0].size <= self._max_items:
            size += self._queue[0].size
            group.append(self._queue.popleft())
        return group

    async def _commit_group(self, group: list[_Pending[B, R]]) -> None:
        try:
            stored = await self._commit([p.batch for p in group])
        except Exception as error:
            if len(group) == 1 or not self._retry_alone(error):
                for pending in group:
                    pending.answer.set_exception(error)
                return
            # Which batch failed is unknown: each alone, in its own transaction.
            for pending in group:
                try:
                    (alone,) = await self._commit([pending.batch])
                except Exception as own_error:
                    pending.answer.set_exception(own_error)
                else:
                    pending.answer.set_result(alone)
            return
        for pending, count in zip(group, stored, strict=True):
            pending.answer.set_result(count)


def _log_unread_failure(answer: asyncio.Future[Any]) -> None:
    if not answer.cancelled() and (error := answer.exception()) is not None:
        logger.warning("a batch whose caller went away failed to commit", exc_info=error)
