"""Replica lag measured against the primary's WAL positions (db/replica_lag.py)."""

from __future__ import annotations

import pytest

from observatory_api.db.replica_lag import PrimaryPositions, parse_lsn, replica_lag


def test_parse_lsn_reads_both_halves() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")


def test_a_caught_up_replica_of_an_idle_primary_has_no_lag() -> None:
    positions = PrimaryPositions()
    # The primary writes nothing for a minute: its position stays; the replica has it all.
    for second in range(0, 60, 2):
        positions.record(float(second), 1000)
    assert replica_lag(positions, 1000, replay_delay=55.0, now=58.5) == pytest.approx(0.5)


def test_a_paused_replica_lags_since_the_last_position_it_holds() -> None:
    positions = PrimaryPositions()
    for second, position in [(0, 100), (2, 200), (4, 300), (6, 400), (8, 500)]:
        positions.record(float(second), position)
    # Replay stopped between the samples of 2 s and 4 s: it holds what the primary had at 2 s.
    assert replica_lag(positions, 250, replay_delay=None, now=9.0) == pytest.approx(7.0)
    assert positions.lag(500, now=9.0) == pytest.approx(1.0)


def test_a_replica_behind_every_sample_is_at_least_as_old_as_the_oldest_one() -> None:
    positions = PrimaryPositions()
    positions.record(10.0, 1000)
    positions.record(12.0, 1100)
    # Its own delay says 1 s, but it misses what the primary had 4 s ago: 4 s at least.
    assert replica_lag(positions, 900, replay_delay=1.0, now=14.0) == pytest.approx(4.0)
    # Its own delay is the larger: that one.
    assert replica_lag(positions, 900, replay_delay=30.0, now=14.0) == pytest.approx(30.0)
    # Nothing known at all: unknown, which the router counts as too far behind.
    assert replica_lag(positions, 900, replay_delay=None, now=14.0) is None


def test_without_the_primary_the_replicas_own_delay_is_used() -> None:
    assert replica_lag(None, 900, replay_delay=3.5, now=1.0) == 3.5
    assert replica_lag(None, None, replay_delay=None, now=1.0) is None


def test_old_samples_are_dropped_and_a_primary_that_went_back_starts_afresh() -> None:
    positions = PrimaryPositions(keep_seconds=10)
    for second in range(0, 30):
        positions.record(float(second), second * 10)
    assert positions.floor(now=29.0) == pytest.approx(10.0)
    positions.record(30.0, 5)  # lower than before: another server, or a restored one
    assert positions.lag(5, now=31.0) == pytest.approx(1.0)
    assert positions.lag(4, now=31.0) is None
