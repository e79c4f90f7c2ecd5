"""SegmentCache: kept by key, dropped by time range, by age and by size; reads raced by a write are not kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from observatory_api.core.query import TimeWindow
from observatory_api.metrics.segment_cache import SegmentCache, pieces, split_by_bucket

DAY = datetime(2026, 11, 1, tzinfo=UTC)


def day(n: int) -> tuple[datetime, datetime]:
    return DAY + timedelta(days=n), DAY + timedelta(days=n + 1)


def put(cache: SegmentCache, key: str, n: int) -> None:
    start, end = day(n)
    cache.put(key, start=start, end=end, states={key: n}, generation=cache.generation)


def test_a_write_drops_only_the_segments_it_touches() -> None:
    cache = SegmentCache()
    for n in range(3):
        put(cache, f"d{n}", n)
    cache.invalidate(DAY + timedelta(days=1, hours=3), DAY + timedelta(days=1, hours=4))
    assert (cache.get("d0"), cache.get("d1"), cache.get("d2")) == ({"d0": 0}, None, {"d2": 2})
    # A span at the very start of a segment is in it; at its end, in the next one.
    cache.invalidate(DAY + timedelta(days=3), DAY + timedelta(days=3))
    assert cache.get("d2") == {"d2": 2}
    cache.invalidate(DAY + timedelta(days=2), DAY + timedelta(days=2))
    assert cache.get("d2") is None


def test_a_read_raced_by_a_write_to_its_range_is_not_kept() -> None:
    cache = SegmentCache()
    generation = cache.generation
    start, end = day(0)
    cache.invalidate(start + timedelta(hours=5), start + timedelta(hours=5))
    cache.put("d0", start=start, end=end, states={}, generation=generation)
    assert cache.get("d0") is None and len(cache) == 0


def test_a_read_raced_only_by_writes_elsewhere_is_kept() -> None:
    """Late writes heard all the time (other workers' ingest) must not keep every read out."""
    cache = SegmentCache()
    generation = cache.generation
    cache.invalidate(DAY - timedelta(days=30), DAY - timedelta(days=30))
    cache.invalidate(DAY + timedelta(days=1), DAY + timedelta(days=1))  # the next segment's first instant
    start, end = day(0)
    cache.put("d0", start=start, end=end, states={}, generation=generation)
    assert cache.get("d0") == {}
    # A clear (a lost subscription) touches every range.
    generation = cache.generation
    cache.clear()
    cache.put("d1", start=start, end=end, states={}, generation=generation)
    assert cache.get("d1") is None


def test_a_read_older_than_the_invalidations_remembered_is_not_kept() -> None:
    now = [0.0]
    cache = SegmentCache(recent_seconds=30, clock=lambda: now[0])
    generation = cache.generation
    cache.invalidate(DAY - timedelta(days=30), DAY - timedelta(days=30))
    now[0] = 40.0
    cache.invalidate(DAY - timedelta(days=20), DAY - timedelta(days=20))  # the first one is forgotten
    start, end = day(0)
    cache.put("d0", start=start, end=end, states={}, generation=generation)
    assert cache.get("d0") is None


def test_entries_expire_and_the_oldest_used_goes_first() -> None:
    now = [0.0]
    cache = SegmentCache(max_entries=2, ttl_seconds=60, clock=lambda: now[0])
    put(cache, "a", 0)
    put(cache, "b", 1)
    assert cache.get("a") is not None  # a is now the most recently used
    put(cache, "c", 2)
    assert cache.get("b") is None and cache.get("a") is not None
    now[0] = 61
    assert cache.get("a") is None and cache.get("c") is None


def test_the_rows_held_are_bounded() -> None:
    cache = SegmentCache(max_rows=5)
    start, end = day(0)
    cache.put("big", start=start, end=end, states={i: {} for i in range(6)}, generation=cache.generation)
    assert cache.get("big") is None  # larger than the whole budget: never kept
    cache.put("three", start=start, end=end, states={i: {} for i in range(3)}, generation=cache.generation)
    cache.put("two", start=start, end=end, states={i: {} for i in range(2)}, generation=cache.generation)
    cache.put("one", start=start, end=end, states={0: {}}, generation=cache.generation)
    assert cache.get("three") is None and cache.get("two") is not None and cache.get("one") is not None


def test_a_suspended_cache_serves_and_keeps_nothing_until_resumed_empty() -> None:
    cache = SegmentCache()
    put(cache, "d0", 0)
    cache.suspend()
    assert not cache.serving and len(cache) == 0
    put(cache, "d1", 1)
    assert cache.get("d1") is None and len(cache) == 0
    generation = cache.generation  # a read that began while suspended
    cache.resume()
    start, end = day(2)
    cache.put("d2", start=start, end=end, states={}, generation=generation)
    assert len(cache) == 0
    put(cache, "d3", 3)
    assert cache.serving and cache.get("d3") == {"d3": 3}


def test_a_cache_shared_through_redis_starts_suspended() -> None:
    cache = SegmentCache(serving=False)
    put(cache, "d0", 0)
    assert cache.get("d0") is None
    cache.resume()
    put(cache, "d0", 0)
    assert cache.get("d0") == {"d0": 0}


def test_a_replica_read_is_kept_only_once_the_replica_holds_the_invalidated_writes() -> None:
    now = [100.0]
    cache = SegmentCache(recent_seconds=30, clock=lambda: now[0])
    start, _ = day(1)
    cache.invalidate(start + timedelta(hours=2), start + timedelta(hours=2))  # at 100
    now[0] = 105.0

    def kept(key: str, holds_until: float, n: int = 1) -> bool:
        first, last = day(n)
        cache.put(key, start=first, end=last, states={}, generation=cache.generation, holds_until=holds_until)
        return cache.get(key) is not None

    # A replica known to hold the primary's commits only up to 99: the row may not be there yet.
    assert not kept("behind", 99.0)
    # Another day was not touched: a replica read of it is kept.
    assert kept("other day", 99.0, n=3)
    # Once the replica holds what the primary had at 100, its read of the day is kept.
    assert kept("caught up", 100.5)
    # The primary (inf) is always kept; a replica behind every invalidation remembered, never.
    assert kept("primary", float("inf"))
    now[0] = 200.0
    assert not kept("far behind", 160.0, n=3)
    assert kept("recent enough", 175.0, n=3)


def test_after_a_resume_replica_reads_wait_for_the_replica_to_pass_it() -> None:
    """Invalidations missed while suspended are unknown: a resume counts as a write everywhere."""
    now = [50.0]
    cache = SegmentCache(serving=False, clock=lambda: now[0])
    cache.resume()
    now[0] = 51.0
    start, end = day(0)
    cache.put("d0", start=start, end=end, states={}, generation=cache.generation, holds_until=49.0)
    assert cache.get("d0") is None
    cache.put("d0", start=start, end=end, states={}, generation=cache.generation, holds_until=50.0)
    assert cache.get("d0") == {}


def test_a_segment_is_cut_in_pieces_at_whole_hours_and_its_rows_follow_their_bucket() -> None:
    start = DAY + timedelta(hours=22, minutes=30)
    part = TimeWindow(start=start, end=DAY + timedelta(days=1, hours=1))
    cut = pieces(part, 3600)
    assert [(p.start, p.end) for p in cut] == [
        (start, DAY + timedelta(hours=23)),
        (DAY + timedelta(hours=23), DAY + timedelta(days=1)),
        (DAY + timedelta(days=1), DAY + timedelta(days=1, hours=1)),
    ]
    assert pieces(TimeWindow(start=DAY, end=DAY + timedelta(hours=1)), 3600) == [
        TimeWindow(start=DAY, end=DAY + timedelta(hours=1))
    ]
    # Keys end with the bucket's start; a bucket begun before the part (a 15-minute bucket at
    # 22:15 holding the part's 22:30-22:44) goes with the first piece.
    level = {
        ("a", DAY + timedelta(hours=22, minutes=15)): 1,
        ("a", DAY + timedelta(hours=22, minutes=45)): 2,
        ("b", DAY + timedelta(hours=23)): 3,
        ("a", DAY + timedelta(days=1, minutes=45)): 4,
    }
    assert split_by_bucket(level, cut) == [
        {("a", DAY + timedelta(hours=22, minutes=15)): 1, ("a", DAY + timedelta(hours=22, minutes=45)): 2},
        {("b", DAY + timedelta(hours=23)): 3},
        {("a", DAY + timedelta(days=1, minutes=45)): 4},
    ]
