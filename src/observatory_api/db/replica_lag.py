"""How far behind the primary a streaming replica is, in seconds, measured against the primary.

The health check records where the primary's WAL stood (`pg_current_wal_flush_lsn()`) at each
check. A replica that has replayed up to position P holds everything the primary had at the latest
recorded moment whose position was at most P: its lag is the time since that moment. This stays
right when the primary is idle (its position does not move, so a caught-up replica reads as 0)
and when the replica's WAL receiver is cut off (the primary moves on, the replica does not), the
two cases where the replica's own `now() - pg_last_xact_replay_timestamp()` misleads. The figure
is an upper bound, high by at most one check interval.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

# Samples are kept this long: a replica further behind reads as "at least" this old.
KEEP_SECONDS = 600.0


def parse_lsn(text: str) -> int:
    """`16/B374D848` as a byte position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


class PrimaryPositions:
    """(time, WAL position) of the primary at recent checks, oldest first; positions never decrease."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self._keep = keep_seconds
        self._times: deque[float] = deque()
        self._positions: deque[int] = deque()

    def record(self, at: float, position: int) -> None:
        if self._positions and position < self._positions[-1]:
            # A primary that went back (restored, or another server behind the same address):
            # earlier samples say nothing about it any more.
            self._times.clear()
            self._positions.clear()
        self._times.append(at)
        self._positions.append(position)
        while self._times and self._times[0] < at - self._keep:
            self._times.popleft()
            self._positions.popleft()

    def lag(self, replayed: int, now: float) -> float | None:
        """Seconds since the latest sample the replica has replayed; None when it has replayed
        none of the samples kept (see `floor`)."""
        index = bisect_right(self._positions, replayed)
        if index == 0:
            return None
        return max(0.0, now - self._times[index - 1])

    def floor(self, now: float) -> float:
        """What a replica behind every sample is at least behind by: the age of the oldest sample."""
        return max(0.0, now - self._times[0]) if self._times else 0.0


def replica_lag(
    positions: PrimaryPositions | None, replayed: int | None, replay_delay: float | None, now: float
) -> float | None:
    """The lag to report: measured against the primary's samples when they cover the replica's
    position; otherwise the larger of what the samples prove and the replica's own replay delay
    (None when neither says anything, which counts as too far behind)."""
    if positions is not None and replayed is not None:
        measured = positions.lag(replayed, now)
        if measured is not None:
            return measured
        if replay_delay is None:
            return None
        return max(positions.floor(now), replay_delay)
    return replay_delay
