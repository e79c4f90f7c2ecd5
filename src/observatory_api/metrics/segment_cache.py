"""The states of closed rollup segments, kept in process until a write touches their time range.

A metric query over rollups reads whole days, hours and minutes (its segments) and, at the edges,
raw spans. A segment that ended before now only changes when late data arrives, and the writer
of this process says which start times each of its writes touched (`invalidate`). So the states
read for a closed segment are kept, keyed by everything that shaped the statement, and reused by
the next query with the same segment (a dashboard asking again, or another window holding the
same days); the open edges are always read.

Never stale after a write of this process: the writer calls `invalidate` after its commit and
before it returns, and a read that was in flight while an invalidation of its range happened is
not stored (`generation`, and the invalidations remembered: writes elsewhere do not keep it out,
or steady late data would keep every read out). Other processes' writes reach it through Redis
(`metrics.segment_sync`): their ranges are invalidated as they arrive, and while that
subscription is not known to be up the cache is `suspend`ed (empty, serving nothing, storing
nothing). A read from a streaming replica is stored only if the replica held every write of the
invalidations that touched its range (`holds_until`, from the replica checks): an invalidation
can arrive before the replica has the row. An entry lives at most `ttl_seconds` whatever happens
(a writer that died before it could publish).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from observatory_api.core.query import TimeWindow

DEFAULT_ENTRIES = 512
# Rows (group and bucket keys) over all entries: a day by minute with a latency histogram is
# ~1,440 rows of ~1.5 KB, so this keeps the cache near 75 MB at worst.
DEFAULT_ROWS = 50_000
DEFAULT_TTL_SECONDS = 60.0
# How long the invalidations are remembered for reads from replicas: a replica that is not known
# to hold everything up to this long ago is never stored from (the read router takes out replicas
# behind by more than `database.max_replica_lag_seconds`, 10 s by default).
DEFAULT_RECENT_SECONDS = 30.0
# Past this many remembered invalidations, they merge into one (later, wider: stricter).
MAX_RECENT = 4096
EVERYTHING = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


# A segment read by bucket is kept in pieces of this many seconds (by grain), so that a late span
# drops the hour of minutes (the day of hours) it fell in, not the whole day by minute.
PIECE_SECONDS = {"minute": 3600, "hour": 86400}


def pieces(part: TimeWindow, seconds: int) -> list[TimeWindow]:
    """`part` cut at the multiples of `seconds` (counted from midnight UTC, as buckets are)."""
    step = timedelta(seconds=seconds)
    midnight = part.start.replace(hour=0, minute=0, second=0, microsecond=0)
    cut = midnight + ((part.start - midnight) // step + 1) * step
    found = []
    start = part.start
    while cut < part.end:
        found.append(TimeWindow(start=start, end=cut))
        start, cut = cut, cut + step
    found.append(TimeWindow(start=start, end=part.end))
    return found


def split_by_bucket(level: dict[Any, Any], parts: list[TimeWindow]) -> list[dict[Any, Any]]:
    """The rows of `level` (keys ending with their bucket's start) of each of `parts`, which are
    consecutive and cut at bucket boundaries: a row belongs to the first part ending after its
    bucket starts (a bucket that began before the first part holds only its rows)."""
    ends = [part.end for part in parts]
    found: list[dict[Any, Any]] = [{} for _ in parts]
    for key, states in level.items():
        found[min(bisect_right(ends, key[-1]), len(parts) - 1)][key] = states
    return found


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    start: datetime
    end: datetime
    states: Any
    rows: int


class SegmentCache:
    """A bounded LRU of segment states (the repository's `Level`s: dicts of rows), dropped by time
    range on write.

    `serving=False` makes one that starts suspended (a cache shared through Redis: until its
    subscription is confirmed). `clock` is the clock of `put`'s `holds_until` (monotonic).
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_ENTRIES,
        max_rows: int = DEFAULT_ROWS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        recent_seconds: float = DEFAULT_RECENT_SECONDS,
        serving: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_rows = max_rows
        self._rows = 0
        self._ttl = ttl_seconds
        self._clock = clock
        self._generation = 0
        self._serving = serving
        self._recent_seconds = recent_seconds
        # (when, first, last) of the invalidations of the last `recent_seconds`, oldest first.
        # (generation, when, first, last) of the invalidations of the last `recent_seconds`, oldest
        # first: the generation each one started.
        self._recent: deque[tuple[int, float, datetime, datetime]] = deque()

    @property
    def generation(self) -> int:
        """Taken before a read; `put` stores nothing if an invalidation of its range happened since."""
        return self._generation

    @property
    def serving(self) -> bool:
        return self._serving

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        if not self._serving:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.states

    def put(
        self,
        key: Hashable,
        *,
        start: datetime,
        end: datetime,
        states: Any,
        generation: int,
        holds_until: float = math.inf,
    ) -> None:
        """Keep `states` of the segment [start, end), read when `generation` was current from a
        database known to hold every write committed before `holds_until` (`clock` time; the
        primary holds all: `inf`). Both are taken before the read."""
        if not self._serving or not self._untouched_since(generation, start, end):
            return  # a write to its range landed while it was read
        if holds_until != math.inf and not self._held(start, end, holds_until):
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
        self._remember(first, last)
        stale = [key for key, entry in self._entries.items() if entry.start <= last and first < entry.end]
        for key in stale:
            self._drop(key)

    def clear(self) -> None:
        """Drop everything: as if every range had been written now."""
        self._generation += 1
        self._remember(*EVERYTHING)
        self._entries.clear()
        self._rows = 0

    def suspend(self) -> None:
        """Serve and store nothing until `resume` (invalidations may be missed meanwhile)."""
        self._serving = False
        self.clear()

    def resume(self) -> None:
        """Serve again, from empty: nothing kept from before can be trusted."""
        self.clear()
        self._serving = True

    def _remember(self, first: datetime, last: datetime) -> None:
        now = self._clock()
        self._forget_before(now - self._recent_seconds)
        self._recent.append((self._generation, now, first, last))
        if len(self._recent) > MAX_RECENT:
            first, last = min(e[2] for e in self._recent), max(e[3] for e in self._recent)
            self._recent.clear()
            self._recent.append((self._generation, now, first, last))

    def _untouched_since(self, generation: int, start: datetime, end: datetime) -> bool:
        """Whether no invalidation since `generation` touched [start, end): a read of that range
        begun then missed no write (one of another range, heard meanwhile, does not matter)."""
        if generation == self._generation:
            return True
        if not self._recent or self._recent[0][0] > generation + 1:
            return False  # some of those invalidations are forgotten (or merged): unknown
        for at_generation, _, first, last in reversed(self._recent):
            if at_generation <= generation:
                return True
            if first < end and start <= last:
                return False
        return True

    def _held(self, start: datetime, end: datetime, holds_until: float) -> bool:
        """Whether a database holding the writes before `holds_until` holds every one whose
        invalidation touched [start, end)."""
        horizon = self._clock() - self._recent_seconds
        self._forget_before(horizon)
        if holds_until < horizon:  # behind the invalidations remembered: unknown
            return False
        return not any(at > holds_until and first < end and start <= last for _, at, first, last in self._recent)

    def _drop(self, key: Hashable) -> None:
        self._rows -= self._entries.pop(key).rows

    def _forget_before(self, horizon: float) -> None:
        while self._recent and self._recent[0][1] < horizon:
            self._recent.popleft()
