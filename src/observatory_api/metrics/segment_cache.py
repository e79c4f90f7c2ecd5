"""The states of closed rollup segments, kept in process until a write touches their time range.

A metric query over rollups reads whole days, hours and minutes (its segments) and, at the edges,
raw spans. A segment that ended before now only changes when late data arrives, and the writer
of this process says which start times each of its writes touched (`invalidate`). So the states
read for a closed segment are kept, keyed by everything that shaped the statement, and reused by
the next query with the same segment (a dashboard asking again, or another window holding the
same days); the open edges are always read.

Never stale after a write of this process: the writer calls `invalidate` after its commit and
before it returns, and a read that was in flight while any invalidation happened is not stored
(`generation`). Writes by other processes (other instances, the `seed` command) are not seen:
an entry lives at most `ttl_seconds`, which bounds how long their late data can be missed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_ENTRIES = 512
# Rows (group and bucket keys) over all entries: a day by minute with a latency histogram is
# ~1,440 rows of ~1.5 KB, so this keeps the cache near 75 MB at worst.
DEFAULT_ROWS = 50_000
DEFAULT_TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    start: datetime
    end: datetime
    states: Any
    rows: int


class SegmentCache:
    """A bounded LRU of segment states (the repository's `Level`s: dicts of rows), dropped by time
    range on write."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_ENTRIES,
        max_rows: int = DEFAULT_ROWS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_rows = max_rows
        self._rows = 0
        self._ttl = ttl_seconds
        self._clock = clock
        self._generation = 0

    @property
    def generation(self) -> int:
        """Taken before a read; `put` stores nothing if an invalidation happened since."""
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.states

    def put(self, key: Hashable, *, start: datetime, end: datetime, states: Any, generation: int) -> None:
        """Keep `states` of the segment [start, end), read when `generation` was current."""
        if generation != self._generation:  # a write landed while it was read: it may miss it
            return
        rows = len(states)
        if rows > self._max_rows:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(self._clock() + self._ttl, start, end, states, rows)
        self._rows += rows
        while len(self._entries) > self._max_entries or self._rows > self._max_rows:
            self._drop(next(iter(self._entries)))

    def invalidate(self, first: datetime, last: datetime) -> None:
        """Spans starting from `first` to `last` (both included) were stored or changed."""
        self._generation += 1
        stale = [key for key, entry in self._entries.items() if entry.start <= last and first < entry.end]
        for key in stale:
            self._drop(key)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._rows = 0

    def _drop(self, key: Hashable) -> None:
        self._rows -= self._entries.pop(key).rows
