"""What a batch's refreshed traces change in their sessions' summaries.

The writer reads the `TOTALS` of each trace summary before refreshing it and gets them back
after; the difference, summed per session, is what each session row must add. A trace's time
range only widens as spans arrive, so the session's range widens with it. A trace that left a
session (its root span named another one) leaves that session to be recomputed in full: what it
had contributed to the session's time range cannot be taken back by subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class TraceTotals(NamedTuple):
    """A trace summary's part in its session's (the columns `summaries.TOTALS`)."""

    trace_id: str
    session_id: str | None
    start_time: datetime
    end_time: datetime
    status: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    unpriced_calls: int
    context_bits: int = 255  # not a session total: what storage.context needs of the trace


@dataclass(slots=True)
class SessionChange:
    """What one session's row must add (what `summaries.add_session_changes` adds)."""

    session_id: str
    first_seen: datetime
    last_seen: datetime
    trace_count: int = 0
    error_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0

    def as_parameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class SessionChanges:
    """The additions per session, and the sessions to recompute from all their traces instead."""

    added: list[SessionChange] = field(default_factory=list)
    recompute: list[str] = field(default_factory=list)


def session_changes(before: dict[str, TraceTotals], after: list[TraceTotals]) -> SessionChanges:
    """The session changes of the traces `after` (refreshed), whose summaries were `before`
    (missing: a new trace). Both in sorted session order, the order their rows are locked in."""
    added: dict[str, SessionChange] = {}
    recompute: set[str] = set()
    for new in after:
        old = before.get(new.trace_id)
        if old is not None and old.session_id is not None and old.session_id != new.session_id:
            recompute.add(old.session_id)
        if new.session_id is None:
            continue
        change = added.get(new.session_id)
        if change is None:
            change = added[new.session_id] = SessionChange(new.session_id, new.start_time, new.end_time)
        change.first_seen = min(change.first_seen, new.start_time)
        change.last_seen = max(change.last_seen, new.end_time)
        # The trace's earlier summary counted in this session already: only the difference adds.
        earlier = old if old is not None and old.session_id == new.session_id else None
        change.trace_count += earlier is None
        change.error_count += new.status == "error"
        change.input_tokens += new.input_tokens
        change.output_tokens += new.output_tokens
        change.total_tokens += new.total_tokens
        change.cost_usd += new.cost_usd
        change.unpriced_calls += new.unpriced_calls
        if earlier is not None:
            change.error_count -= earlier.status == "error"
            change.input_tokens -= earlier.input_tokens
            change.output_tokens -= earlier.output_tokens
            change.total_tokens -= earlier.total_tokens
            change.cost_usd -= earlier.cost_usd
            change.unpriced_calls -= earlier.unpriced_calls
    # A recomputed session reads every trace it has now: adding as well would count twice.
    return SessionChanges(
        added=[added[session_id] for session_id in sorted(added) if session_id not in recompute],
        recompute=sorted(recompute),
    )
