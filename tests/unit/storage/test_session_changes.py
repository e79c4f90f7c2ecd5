"""session_changes: what refreshed traces add to their sessions, and when a session is recomputed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from observatory_api.storage.session_changes import TraceTotals, session_changes

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def totals(trace_id: str, session_id: str | None, *, start: int = 0, end: int = 10, **fields: object) -> TraceTotals:
    values: dict[str, object] = {
        "status": "ok",
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cost_usd": 0.0,
        "unpriced_calls": 0,
        **fields,
    }
    return TraceTotals(
        trace_id,
        session_id,
        T0 + timedelta(seconds=start),
        T0 + timedelta(seconds=end),
        **values,
    )


def test_new_traces_add_their_whole_totals_per_session() -> None:
    after = [
        totals("t1", "s", start=5, end=8, input_tokens=3, output_tokens=4, total_tokens=7, cost_usd=0.5),
        totals("t2", "s", start=2, end=6, status="error", input_tokens=1, total_tokens=1, cost_usd=0.25),
        totals("t3", "other", start=1, end=2),
        totals("t4", None, start=0, end=1, input_tokens=100),
    ]

    changes = session_changes({}, after)

    assert changes.recompute == []
    assert [change.session_id for change in changes.added] == ["other", "s"]
    s = changes.added[1]
    assert (s.first_seen, s.last_seen) == (T0 + timedelta(seconds=2), T0 + timedelta(seconds=8))
    assert (s.trace_count, s.error_count) == (2, 1)
    assert (s.input_tokens, s.output_tokens, s.total_tokens, s.cost_usd) == (4, 4, 8, 0.75)


def test_a_trace_already_counted_adds_only_its_difference() -> None:
    before = {"t1": totals("t1", "s", start=5, end=8, input_tokens=3, total_tokens=3, cost_usd=0.5)}
    after = [totals("t1", "s", start=4, end=9, status="error", input_tokens=10, total_tokens=12, cost_usd=0.75)]

    (change,) = session_changes(before, after).added

    assert (change.trace_count, change.error_count) == (0, 1)
    assert (change.input_tokens, change.total_tokens, change.cost_usd) == (7, 9, 0.25)
    assert (change.first_seen, change.last_seen) == (T0 + timedelta(seconds=4), T0 + timedelta(seconds=9))


def test_an_error_trace_stays_counted_once() -> None:
    before = {"t1": totals("t1", "s", status="error")}
    after = [totals("t1", "s", status="error", input_tokens=2)]

    (change,) = session_changes(before, after).added

    assert (change.trace_count, change.error_count, change.input_tokens) == (0, 0, 2)


def test_a_trace_that_moves_adds_to_the_new_session_and_recomputes_the_old() -> None:
    before = {
        "moved": totals("moved", "old", input_tokens=5),
        "stays": totals("stays", "old", input_tokens=1),
    }
    after = [totals("moved", "new", input_tokens=6), totals("stays", "old", input_tokens=2)]

    changes = session_changes(before, after)

    # "old" is read again in full, so its own trace's difference must not be added on top.
    assert changes.recompute == ["old"]
    (change,) = changes.added
    assert (change.session_id, change.trace_count, change.input_tokens) == ("new", 1, 6)
