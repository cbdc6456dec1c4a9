"""Two independent samples from their moments: the pieces every two-level comparison shares
(t-test, power, post-hoc pairs, compare's log-scale Welch): pooled variance, Welch's degrees of
freedom, the difference of means without cancellation, Cohen's d and Hedges' g, Fieller's
interval of a ratio of means. Pure functions of :class:`~analysis.data.GroupMoments` or
floats; scipy is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from typing import Any

from analysis.data import GroupMoments
from analysis.errors import AnalysisError


def fieller_interval(
    mean_a: float, se2_a: float, mean_b: float, se2_b: float, df: float, confidence_level: float
) -> tuple[float, float]:
    """Fieller's interval of ``mean_a / mean_b`` for independent means with squared standard
    errors ``se2_a``, ``se2_b``: the r with ``(mean_a - r mean_b)^2 <= q^2 (se2_a + r^2 se2_b)``,
    q the t quantile at ``df``. ``(nan, nan)`` when ``mean_b^2 <= q^2 se2_b`` (unbounded)."""
    from analysis.intervals import t_quantile

    q2 = t_quantile(confidence_level, df) ** 2
    lead = mean_b * mean_b - q2 * se2_b
    if not lead > 0:
        return math.nan, math.nan
    half = math.sqrt(q2 * (se2_a * lead + se2_b * mean_a * mean_a))
    centre = mean_a * mean_b
    return (centre - half) / lead, (centre + half) / lead


def pooled_var(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """The two groups' pooled sample variance (``n_a + n_b - 2`` degrees of freedom)."""
    return ((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2)


def mean_difference(ga: GroupMoments, gb: GroupMoments) -> float:
    """``mean_a - mean_b``, with the shifts subtracted apart from the shifted means."""
    return (ga.shift - gb.shift) + (ga.mean_dev - gb.mean_dev)


def hedges_correction(df: float) -> float:
    """Hedges' exact small-sample factor ``J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))``
    (as a Pochhammer symbol, accurate for any ``df``; ``df > 1``)."""
    from scipy.special import poch

    m = df / 2.0
    return float(poch(m - 0.5, 0.5)) / math.sqrt(m)


def effect_sizes(ga: GroupMoments, gb: GroupMoments) -> tuple[float, float]:
    """``(cohens_d, hedges_g)`` of ``mean_a - mean_b``; NaN when neither level varies."""
    pooled = pooled_var(ga.var, ga.n, gb.var, gb.n)
    if not pooled > 0:
        return math.nan, math.nan
    d = mean_difference(ga, gb) / math.sqrt(pooled)
    return d, d * hedges_correction(ga.n + gb.n - 2)


def standard_error(var_a: float, n_a: int, var_b: float, n_b: int, *, equal_var: bool) -> float:
    if equal_var:
        return math.sqrt(pooled_var(var_a, n_a, var_b, n_b) * (1.0 / n_a + 1.0 / n_b))
    return math.sqrt(var_a / n_a + var_b / n_b)


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite degrees of freedom of the difference of two means."""
    va, vb = var_a / n_a, var_b / n_b
    return (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))


def check_sizes(ga: GroupMoments, gb: GroupMoments, *, metric: str, group: str, what: str) -> None:
    for g in (ga, gb):
        if g.n < 2:
            raise AnalysisError(
                f"--group {group}: level {g.level} has only {g.n} trial with {metric}; {what} "
                "needs at least 2 per level: run more trials or compare other levels"
            )


def describe(ga: GroupMoments, gb: GroupMoments, *, metric: str, group: str) -> dict[str, Any]:
    """The fields every test shares: what was compared, and each level's n, mean and sd."""
    return {
        "metric": metric,
        "group": group,
        "a": ga.level,
        "b": gb.level,
        "n_a": ga.n,
        "n_b": gb.n,
        "mean_a": ga.mean,
        "mean_b": gb.mean,
        "sd_a": math.sqrt(ga.var),
        "sd_b": math.sqrt(gb.var),
    }
