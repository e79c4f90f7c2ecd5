"""The rollup histograms: bins, merging, and the stated percentile error bound."""

from __future__ import annotations

import random

import pytest

from observatory_api.metrics import histogram
from observatory_api.metrics.histogram import ALPHA, BINS, GAMMA, bin_of, histogram_of, percentile
from tests.integration.metrics.expected import percentile as exact_percentile


def test_bins_are_log_spaced_and_cover_the_range() -> None:
    assert bin_of(0.0) == 0 and bin_of(0.999) == 0 and bin_of(float("nan")) == 0
    assert bin_of(1.0) == 1
    assert bin_of(GAMMA * 1.0001) == 2
    assert bin_of(1e12) == BINS - 1
    assert bin_of(float("inf")) == BINS - 1
    for index in range(1, BINS - 1):
        # Every value of a bin is within ALPHA of the bin's representative.
        low, high = GAMMA ** (index - 1), GAMMA**index
        rep = histogram.representative(index)
        assert abs(rep - low) <= ALPHA * low * (1 + 1e-12)
        assert abs(rep - high) <= ALPHA * high * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_percentiles_are_within_the_stated_bound(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([1, 2, 3, 10, 100, 5000])
    values = [min(max(rng.lognormvariate(7, 1.5), 1.0), histogram.UPPER * 0.99) for _ in range(size)]
    counts = histogram_of(values)
    for fraction in (0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0):
        exact = exact_percentile(values, fraction)
        estimate = percentile(counts, fraction, minimum=min(values), maximum=max(values))
        assert exact is not None and estimate is not None
        assert abs(estimate - exact) <= ALPHA * exact * (1 + 1e-9), (fraction, estimate, exact)


def test_merged_histograms_answer_like_one_histogram() -> None:
    rng = random.Random(3)
    a = [rng.uniform(1, 5000) for _ in range(300)]
    b = [rng.uniform(100, 90_000) for _ in range(200)]
    merged = [x + y for x, y in zip(histogram_of(a), histogram_of(b), strict=True)]
    assert merged == histogram_of(a + b)
    assert percentile([0] * BINS, 0.5, minimum=None, maximum=None) is None
