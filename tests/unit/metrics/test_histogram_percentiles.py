"""`histogram.percentiles` (every fraction from one cumulative pass) and `states.point_values` (a
point's values in one call) against the implementations they replaced: the same floats, bit for
bit, on histograms of every shape."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

import pytest

from observatory_api.metrics import histogram
from observatory_api.metrics.histogram import BINS, percentile, percentiles
from observatory_api.metrics.plan import Selection, plan_query
from observatory_api.metrics.schemas import MetricQuery, MetricSelection
from observatory_api.metrics.states import States, decoder, point_values, readers
from observatory_api.settings import QuerySettings


def _clamp(value: float, minimum: float | None, maximum: float | None) -> float:
    if minimum is not None and value < minimum:
        return minimum
    if maximum is not None and value > maximum:
        return maximum
    return value


def old_percentile(
    counts: Sequence[int], fraction: float, minimum: float | None, maximum: float | None
) -> float | None:
    """`histogram.percentile` as it was: one cumulative pass per fraction."""
    cumulative = list(accumulate(counts))
    total = cumulative[-1] if cumulative else 0
    if total == 0:
        return None
    rank = fraction * (total - 1)
    lower = int(rank)
    upper = min(lower + 1, total - 1)
    low, high = bisect_right(cumulative, lower), bisect_right(cumulative, upper)
    estimate_low = _clamp(histogram.representative(low), minimum, maximum)
    estimate_high = _clamp(histogram.representative(high), minimum, maximum)
    return estimate_low + (estimate_high - estimate_low) * (rank - lower)


FRACTIONS = (0.0, 0.5, 0.95, 0.99, 1.0, 0.25, 0.999, 0.001)


def _histograms() -> list[list[int]]:
    rng = random.Random(21)
    shapes = [
        [0] * BINS,  # empty
        [1] + [0] * (BINS - 1),  # one value below 1 ms
        [0] * (BINS - 1) + [1],  # one value in the open-ended last bin
        [0] * (BINS - 1) + [7],  # all in the overflow bin
        [3] + [0] * (BINS - 2) + [4],  # only the two overflow bins
        [0] * 40 + [1] + [0] * (BINS - 41),  # one bin, one value
        [0] * 40 + [9] + [0] * (BINS - 41),  # one bin, many values
        [1] * BINS,  # every bin
        [0] * 30 + [2, 0, 0, 5] + [0] * (BINS - 34),  # two neighbouring bins with a gap
    ]
    for _ in range(60):
        counts = [0] * BINS
        for _ in range(rng.choice([1, 2, 3, 5, 12, 100, 5000])):
            counts[min(max(int(rng.gauss(60, 15)), 0), BINS - 1)] += 1
        shapes.append(counts)
    return shapes


BOUNDS = [(None, None), (10.0, 5000.0), (0.2, None), (None, 3.0), (50.0, 60.0), (100.0, 10.0)]


@pytest.mark.parametrize("bounds", BOUNDS)
def test_percentiles_are_the_old_percentiles_bit_for_bit(bounds: tuple[float | None, float | None]) -> None:
    minimum, maximum = bounds
    for counts in _histograms():
        expected = [old_percentile(counts, f, minimum, maximum) for f in FRACTIONS]
        assert percentiles(counts, FRACTIONS, minimum, maximum) == expected, counts
        for fraction, value in zip(FRACTIONS, expected, strict=True):
            assert percentile(counts, fraction, minimum=minimum, maximum=maximum) == value


def test_percentiles_of_nothing_are_none() -> None:
    assert percentiles([], FRACTIONS, None, None) == [None] * len(FRACTIONS)
    assert percentiles([0] * BINS, (0.5,), 1.0, 2.0) == [None]
    assert percentiles([0] * BINS, (), None, None) == []


def _selections(*chosen: MetricSelection) -> tuple[Selection, ...]:
    return tuple(plan_query(MetricQuery(metrics=list(chosen)), QuerySettings(), allow_content=True).selections)


@pytest.mark.parametrize(
    "chosen",
    [
        # by_minute_24h's: a count, a sum and one percentile (each selection's own reader)
        [
            MetricSelection(id="request_count"),
            MetricSelection(id="cost_usd", aggregation="sum"),
            MetricSelection(id="latency_ms", aggregation="p95"),
        ],
        # three percentiles of one metric between other values (one cumulative pass for them)
        [
            MetricSelection(id="latency_ms", aggregation="p99"),
            MetricSelection(id="request_count"),
            MetricSelection(id="latency_ms", aggregation="p50"),
            MetricSelection(id="latency_ms", aggregation="avg"),
            MetricSelection(id="latency_ms", aggregation="p95"),
        ],
    ],
)
def test_point_values_are_each_readers_values_in_selection_order(chosen: list[MetricSelection]) -> None:
    selections = _selections(*chosen)
    read_all = point_values(selections)
    one_by_one = readers(selections)
    exact = {"latency_ms": {0.5: 12.5, 0.95: 80.0, 0.99: 99.0}}
    rng = random.Random(7)
    cases: list[tuple[States, dict[str, dict[float, float | None]]]] = [({}, {}), ({}, exact)]
    for counts in _histograms():
        states: States = {
            "latency_ms:h": counts,
            "latency_ms:min": rng.choice([None, 3.0, 40.0]),
            "latency_ms:max": rng.choice([None, 900.0, 40.0]),
            "latency_ms:c": sum(counts),
            "latency_ms:s": 1234.5,
            "request_count:n": sum(counts),
            "cost_usd:s": 0.25,
        }
        cases.append((states, {}))
    for states, at in cases:
        expected = {key: read(states, at) for key, read in one_by_one}
        found = read_all(states, at)
        assert found == expected
        assert list(found) == list(expected)  # the answer's keys in selection order


def test_the_plain_decoder_is_the_general_one() -> None:
    names = ("request_count:n", "latency_ms:h", "latency_ms:min", "cost_usd:s")
    row = (3, [0, 1, 2], 1.5, None)
    decoded = decoder(names)(row)
    assert decoded == {"request_count:n": 3, "latency_ms:h": [0, 1, 2], "latency_ms:min": 1.5, "cost_usd:s": None}
    assert list(decoded) == list(names)
    # PostgreSQL's packed bins come as JSON text (`sql._bin_sums`): the same list
    assert decoder(names)((3, "[0,1,2]", 1.5, None)) == decoded
    # bins in a column each (SQLite): one list, in the order of the columns
    split = decoder(("a:n", "a:h0", "a:h1", "a:h2"))((1, 4, 0, 6))
    assert split == {"a:n": 1, "a:h": [4, 0, 6]}
