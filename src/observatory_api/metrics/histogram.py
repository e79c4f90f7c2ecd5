"""Mergeable log-spaced histograms: percentiles over pre-aggregated data with a stated error bound.

Bin 0 holds values below 1 (ms); bin i (1 <= i < BINS - 1) holds [GAMMA**(i-1), GAMMA**i); the
last bin holds everything from GAMMA**(BINS-2) up. A bin is represented by 2*GAMMA**i/(GAMMA+1),
which is within ALPHA (relative) of every value in [GAMMA**(i-1), GAMMA**i]. A percentile is taken
at the same rank as PostgreSQL's percentile_cont (p * (n - 1), interpolated between the two
neighbouring order statistics), each neighbour estimated from its bin and clamped to the group's
exact min and max: for values in [1, UPPER) the estimate is within ALPHA of the exact percentile.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

ALPHA = 0.05
GAMMA = (1 + ALPHA) / (1 - ALPHA)
BINS = 160
_LOG_GAMMA = math.log(GAMMA)
# The bound holds below this value (about 2 hours for milliseconds); above, the max clamps.
UPPER = GAMMA ** (BINS - 2)


def bin_of(value: float) -> int:
    if not value >= 1.0:  # also catches NaN
        return 0
    if math.isinf(value):  # floor(log(inf)) would raise: it belongs to the open-ended last bin
        return BINS - 1
    return min(1 + math.floor(math.log(value) / _LOG_GAMMA), BINS - 1)


def representative(index: int) -> float:
    if index == 0:
        return 0.5
    return 2 * GAMMA**index / (GAMMA + 1)


# Every bin's representative, computed once: a day by minute takes 1,440 percentiles.
_REPRESENTATIVES = tuple(representative(i) for i in range(BINS))


def histogram_of(values: Sequence[float]) -> list[int]:
    counts = [0] * BINS
    for value in values:
        counts[bin_of(value)] += 1
    return counts


def percentile(counts: Sequence[int], fraction: float, *, minimum: float | None, maximum: float | None) -> float | None:
    """The `fraction` percentile of the values counted in `counts` (see the module docstring)."""
    return percentiles(counts, (fraction,), minimum, maximum)[0]


def percentiles(
    counts: Sequence[int], fractions: Sequence[float], minimum: float | None, maximum: float | None
) -> list[float | None]:
    """The percentile of each of `fractions` (see `percentile`), from one cumulative pass over the
    bins: a day by minute takes one per point, and p50/p95/p99 of one metric share it."""
    cumulative = list(accumulate(counts))
    total = cumulative[-1] if cumulative else 0
    if total == 0:
        return [None] * len(fractions)
    found: list[float | None] = []
    last = total - 1
    for fraction in fractions:
        rank = fraction * last
        lower = int(rank)
        upper = lower + 1 if lower < last else last
        # The bin holding the k-th smallest value (0-based) is the first whose running count exceeds k.
        estimate_low = _REPRESENTATIVES[bisect_right(cumulative, lower)]
        estimate_high = _REPRESENTATIVES[bisect_right(cumulative, upper)]
        # Clamped to the group's exact min and max (inline, the min first as ever: one call less per bound).
        if minimum is not None and estimate_low < minimum:
            estimate_low = minimum
        elif maximum is not None and estimate_low > maximum:
            estimate_low = maximum
        if minimum is not None and estimate_high < minimum:
            estimate_high = minimum
        elif maximum is not None and estimate_high > maximum:
            estimate_high = maximum
        found.append(estimate_low + (estimate_high - estimate_low) * (rank - lower))
    return found
