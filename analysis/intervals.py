"""Student-t confidence intervals shared by the t-test and the summary (scipy imported lazily)."""

from __future__ import annotations

import functools


@functools.cache
def t_quantile(confidence_level: float, df: float) -> float:
    """Two-sided critical value: the ``(1 + confidence_level) / 2`` quantile of t(``df``)
    (cached: a summary asks for the same few degrees of freedom again and again)."""
    from scipy import stats

    if not 0 < confidence_level < 1:
        raise ValueError("confidence_level must be between 0 and 1")
    return float(stats.t.ppf((1 + confidence_level) / 2, df))


def t_interval(center: float, se: float, df: float, confidence_level: float) -> tuple[float, float]:
    """``center`` ± t quantile × ``se``."""
    q = t_quantile(confidence_level, df)
    return center - q * se, center + q * se
