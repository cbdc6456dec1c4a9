"""Percentile bootstrap of the median, simulated exactly without resampling rows.

A resample of ``n`` values draws each value as ``x_(ceil(n U))`` (sorted data, 1-based) with
``U`` uniform on (0, 1); the map is non-decreasing, so the resample's ``k``-th order statistic is
``x_(ceil(n U_(k)))`` where ``U_(k)`` is the ``k``-th order statistic of ``n`` uniforms. Hence the
median of a resample needs only ``U_(m)`` (``m = (n + 1) / 2``, odd ``n``) or the pair
``U_(m), U_(m+1)`` (``m = n / 2``, even ``n``; the median is their mean, as ``np.median``):

- ``U_(m) ~ Beta(m, n - m + 1)``;
- given ``U_(m)``, the other ``n - m`` uniforms above it are uniform on ``(U_(m), 1)``, so
  ``U_(m+1) = U_(m) + (1 - U_(m)) Beta(1, n - m)``.

``n_boot`` draws cost O(``n_boot``) whatever ``n`` is, and need from the data only the order
statistics near the middle (:func:`median_window`: about ``10 sqrt(n)`` of them), which the
caller fetches from DuckDB. The draws have exactly the distribution of ``np.median`` of
``n_boot`` resamples drawn with replacement.

NumPy is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def group_rng(seed: int, key: Sequence[Any]) -> np.random.Generator:
    """A generator for one (metric, group): its stream depends on ``seed`` and ``key`` only, so a
    group's interval does not change when other groups or metrics are added or filtered out.

    ``key`` must be JSON-serialisable (e.g. the metric name and the group's level labels).
    """
    import numpy as np

    digest = hashlib.sha256(json.dumps(list(key), sort_keys=True).encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=words)))


#: Half-width, in units of sqrt(n), of the rank window around the median that
#: :func:`median_window` returns. The resampled median's rank has a standard deviation of about
#: sqrt(n) / 2, so the window spans 10 standard deviations each side.
WINDOW_SQRT_N = 5.0


def middle_rank(n: int) -> int:
    """``m``: the median of ``n`` sorted values is ``x_(m)`` (odd ``n``) or the mean of
    ``x_(m)`` and ``x_(m+1)`` (even ``n``)."""
    return (n + 1) // 2 if n % 2 else n // 2


def median_window(n: int) -> tuple[int, int]:
    """Ranks ``(first, last)`` (1-based, inclusive) that hold every rank :func:`median_ranks`
    draws for ``n`` values except with probability below 1e-20 per draw: ``m`` and ``m + 1``
    widened by ``WINDOW_SQRT_N * sqrt(n)`` each way, within ``1..n``."""
    m = middle_rank(n)
    half = math.ceil(WINDOW_SQRT_N * math.sqrt(n))
    return max(1, m - half), min(n, m + 1 + half)


def median_ranks(n: int, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks ``(lo, hi)`` in the sorted data of the middle value(s) of ``n_boot``
    resamples of ``n`` values: the bootstrap medians are ``x_(lo)`` (odd ``n``: ``lo == hi``)
    or ``(x_(lo) + x_(hi)) / 2`` (even ``n``). Integer arrays of length ``n_boot``."""
    if n < 1:
        raise ValueError("median_ranks needs n >= 1")
    m = middle_rank(n)
    u = rng.beta(m, n - m + 1, size=n_boot)
    lo = _rank(n, u)
    if n % 2:
        return lo, lo.copy()
    v = u + (1.0 - u) * rng.beta(1, n - m, size=n_boot)
    return lo, _rank(n, v)  # v >= u, so hi >= lo


def _rank(n: int, u: np.ndarray) -> np.ndarray:
    """``ceil(n u)`` clipped to ``1..n`` (a uniform in (0, 1) -> the rank it resamples)."""
    import numpy as np

    return np.clip(np.ceil(n * u), 1, n).astype(np.int64)


def medians_from_ranks(
    values: np.ndarray, first_rank: int, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Bootstrap medians from :func:`median_ranks`' ranks, given the sorted order statistics
    ``values`` = ``x_(first_rank) .. x_(first_rank + len(values) - 1)``."""
    a = values[lo - first_rank]
    if (lo == hi).all():
        return a
    b = values[hi - first_rank]
    # 0.5 a + 0.5 b: the correctly rounded mean, no overflow, and inf where both are inf
    return 0.5 * a + 0.5 * b


def percentile_interval(samples: np.ndarray, confidence_level: float) -> tuple[float, float]:
    """Percentile interval: the ``(1 -/+ confidence_level) / 2`` quantiles of ``samples``
    (linear interpolation, as ``scipy.stats.bootstrap(method="percentile")``)."""
    import numpy as np

    alpha = (1.0 - confidence_level) / 2.0
    if np.isfinite(samples).all():
        low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    else:  # an infinite value: take the order statistics themselves (inf - inf is NaN)
        low = np.quantile(samples, alpha, method="lower")
        high = np.quantile(samples, 1.0 - alpha, method="higher")
    return float(low), float(high)
