"""The invalidation messages of the metric segment caches: what a writer sends is what the others read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from observatory_api.metrics.segment_sync import channel_name, decode, encode, new_origin


def test_ranges_round_trip_to_the_microsecond() -> None:
    first = datetime(2026, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    ranges = [(first, first + timedelta(microseconds=1)), (first - timedelta(days=40), first)]
    assert decode(encode("me", ranges)) == ("me", ranges)


def test_a_message_without_pairs_of_times_is_refused() -> None:
    with pytest.raises(ValueError, match="pairs"):
        decode(b"me")
    with pytest.raises(ValueError, match="pairs"):
        decode(b"me 1 2 3")


def test_the_channel_follows_the_key_prefix_and_origins_differ() -> None:
    assert channel_name("observatory") == "observatory:metrics:segments"
    assert new_origin() != new_origin()
