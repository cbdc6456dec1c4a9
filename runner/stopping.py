"""When a configuration has enough trials: the distribution-free interval of a median that
``runner trials --until-ci`` stops on.

The runner otherwise knows nothing of statistics; this is the one rule it needs to decide, while
it runs, whether to add a round. It is exact (binomial order statistics, as in Conover's
*Practical Nonparametric Statistics*, section 3.2), needs no SciPy, and assumes nothing about the
shape of the times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Coverage of the interval ``--until-ci`` asks to be narrow.
CONFIDENCE = 0.95
#: Fewest values with a 95% interval of the median (the minimum and maximum of 6 cover it 96.9%
#: of the time; of 5, only 93.8%).
MIN_N = 6


#: Above this many values the binomial tail is summed in log space (floats) instead of with exact
#: integers, whose cost grows as n squared (about 0.03 s at this bound).
EXACT_N = 5000


def _log_pmf(i: int, n: int) -> float:
    """ln P(B = i) for B ~ Binomial(n, 1/2)."""
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)


def _lower_tail(k: int, n: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2) and k below n / 2, summed from k downwards until the
    terms no longer change the sum (relative error about 1e-13)."""
    total, i = 0.0, k
    while i >= 0:
        term = math.exp(_log_pmf(i, n))
        total += term
        if term < total * 1e-17:
            break
        i -= 1
    return total


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks ``(j, n + 1 - j)`` of the order statistics that bound the median with at
    least ``confidence`` coverage, the narrowest such pair; None when ``n`` is too small (below
    6 trials even the minimum and maximum cover the median less than 95% of the time).

    The pair covers the median with probability ``1 - 2 P(B <= j - 1)``, B ~ Binomial(n, 1/2),
    so ``j`` is the largest rank with ``2 P(B <= j - 1) <= 1 - confidence``. Up to
    :data:`EXACT_N` values the tail is an exact integer sum compared as a fraction; above, a
    log-space sum found by bisection."""
    if n <= EXACT_N:
        from fractions import Fraction

        # 2 * cum / 2**n <= 1 - confidence, with cum = the sum of C(n, i) for i < j
        limit = (1 - Fraction(confidence)) * 2**n
        best, cum, term = None, 0, 1  # term = C(n, j - 1)
        for j in range(1, n // 2 + 1):
            cum += term
            if 2 * cum > limit:
                break
            best = (j, n + 1 - j)
            term = term * (n - j + 1) // j
        return best
    alpha = 1 - confidence
    low, high = 0, n // 2  # the answer j is in [low, high]; j = 0: no pair covers
    while low < high:
        mid = (low + high + 1) // 2
        if 2 * _lower_tail(mid - 1, n) <= alpha:
            low = mid
        else:
            high = mid - 1
    return (low, n + 1 - low) if low >= 1 else None


@dataclass(frozen=True)
class MedianInterval:
    n: int
    median: float
    low: float
    high: float

    @property
    def rel_half_width(self) -> float:
        """Half the interval's width over the median (inf when the median is 0)."""
        if self.median == 0:
            return math.inf
        return (self.high - self.low) / 2 / abs(self.median)


def median_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> MedianInterval | None:
    """The median of ``values`` and its distribution-free interval; None below 6 values."""
    xs = sorted(values)
    ranks = median_ci_ranks(len(xs), confidence)
    if ranks is None:
        return None
    j, k = ranks
    n = len(xs)
    mid = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    return MedianInterval(n, mid, xs[j - 1], xs[k - 1])
