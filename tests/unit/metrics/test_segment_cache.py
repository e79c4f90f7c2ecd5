"""SegmentCache: kept by key, dropped by time range, by age and by size; reads raced by a write are not kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from observatory_api.metrics.segment_cache import SegmentCache

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


def test_a_read_raced_by_a_write_is_not_kept() -> None:
    cache = SegmentCache()
    generation = cache.generation
    cache.invalidate(DAY - timedelta(days=30), DAY - timedelta(days=30))  # anywhere
    start, end = day(0)
    cache.put("d0", start=start, end=end, states={}, generation=generation)
    assert cache.get("d0") is None and len(cache) == 0


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
