"""Student-t distribution functions and confidence intervals shared by the t-test, the power and
the summary.

``t_sf``, ``t_ppf`` and ``t_isf`` call the ``scipy.special`` functions ``scipy.stats.t`` itself
calls (``stdtr``, ``stdtrit``) for ordinary arguments (finite, ``0 < df < inf``), so the results
are the same to the bit without importing ``scipy.stats`` (about 0.3 s and 40 MB); the edge cases
(infinite or NaN degrees of freedom or arguments, probabilities 0 and 1) go to ``scipy.stats``.
``f_sf`` and ``chi2_sf`` do the same for ``scipy.stats.f.sf`` and ``scipy.stats.chi2.sf``.
"""

from __future__ import annotations

import functools
import math


def _ordinary(x: float, df: float) -> bool:
    return math.isfinite(x) and 0 < df < math.inf


def t_sf(x: float, df: float) -> float:
    """``scipy.stats.t.sf(x, df)``: ``scipy.special.stdtr(df, -x)`` for ordinary arguments."""
    if _ordinary(x, df):
        from scipy import special

        return float(special.stdtr(df, -x))
    from scipy import stats

    return float(stats.t.sf(x, df))


def t_ppf(q: float, df: float) -> float:
    """``scipy.stats.t.ppf(q, df)``: ``scipy.special.stdtrit(df, q)`` for ``0 < q < 1``."""
    if 0 < q < 1 and _ordinary(q, df):
        from scipy import special

        return float(special.stdtrit(df, q))
    from scipy import stats

    return float(stats.t.ppf(q, df))


def t_isf(q: float, df: float) -> float:
    """``scipy.stats.t.isf(q, df)``: ``-scipy.special.stdtrit(df, q)`` for ``0 < q < 1``."""
    if 0 < q < 1 and _ordinary(q, df):
        from scipy import special

        return float(-special.stdtrit(df, q))
    from scipy import stats

    return float(stats.t.isf(q, df))


def f_sf(statistic: float, df_num: float, df_den: float) -> float:
    """``scipy.stats.f.sf``: the same ``scipy.special.fdtrc`` it calls, without importing
    scipy.stats (about 0.3 s) for ordinary arguments; scipy.stats for the edge cases."""
    if (
        math.isfinite(statistic)
        and statistic >= 0
        and 0 < df_num < math.inf
        and 0 < df_den < math.inf
    ):
        from scipy import special

        return float(special.fdtrc(df_num, df_den, statistic))
    from scipy import stats

    return float(stats.f.sf(statistic, df_num, df_den))


def chi2_sf(statistic: float, df: float) -> float:
    """``scipy.stats.chi2.sf`` by the ``scipy.special.chdtrc`` it calls (see :func:`f_sf`)."""
    if math.isfinite(statistic) and statistic >= 0 and 0 < df < math.inf:
        from scipy import special

        return float(special.chdtrc(df, statistic))
    from scipy import stats

    return float(stats.chi2.sf(statistic, df))


@functools.cache
def t_quantile(confidence_level: float, df: float) -> float:
    """Two-sided critical value: the ``(1 + confidence_level) / 2`` quantile of t(``df``)
    (cached: a summary asks for the same few degrees of freedom again and again)."""
    if not 0 < confidence_level < 1:
        raise ValueError("confidence_level must be between 0 and 1")
    return t_ppf((1 + confidence_level) / 2, df)


def t_interval(center: float, se: float, df: float, confidence_level: float) -> tuple[float, float]:
    """``center`` ± t quantile × ``se``."""
    q = t_quantile(confidence_level, df)
    return center - q * se, center + q * se
