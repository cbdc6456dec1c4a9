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


def _binom_cdf(k: int, n: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2)."""
    if k < 0:
        return 0.0
    return math.fsum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2**n


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks ``(j, n + 1 - j)`` of the order statistics that bound the median with at
    least ``confidence`` coverage, the narrowest such pair; None when ``n`` is too small (below
    6 trials even the minimum and maximum cover the median less than 95% of the time)."""
    best = None
    for j in range(1, n // 2 + 1):
        coverage = 1 - 2 * _binom_cdf(j - 1, n)
        if coverage >= confidence:
            best = (j, n + 1 - j)
        else:
            break
    return best


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
