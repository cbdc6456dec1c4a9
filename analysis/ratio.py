"""The ratio of two levels' means: the quotient without cancellation, its percentile bootstrap
interval (rows resampled in chunks, or each resample mean drawn from its normal limit for very
large samples), Fieller's interval with the t-test's variances, and the sentence saying when the
bootstrap and the test disagree."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from analysis.bootstrap import percentile_interval
from analysis.data import GroupMoments, Selection, fmt
from analysis.errors import AnalysisError
from analysis.pair_levels import level_values
from analysis.ttest_result import TITLES, TtestResult
from analysis.twosample import fieller_interval, pooled_var, welch_df

if TYPE_CHECKING:
    import duckdb
    import numpy as np

#: A bootstrap that would draw more values than this (``n_boot * (n_a + n_b)``) draws each
#: resample mean from its normal limit instead (``ratio_ci_method = "bootstrap-normal"``).
BOOT_MAX_DRAWS = 50_000_000
#: About this many values are drawn at a time while resampling rows (bounds the memory used).
BOOT_CHUNK = 1 << 22


def ratio_of_means(diff: Any, mean_a: Any, mean_b: Any) -> Any:
    """``mean_a / mean_b`` (floats or arrays) given also ``diff = mean_a - mean_b`` computed
    without cancellation: near 1 it is ``1 + diff / mean_b``, which keeps ``ratio - 1`` to full
    precision for data such as ``1e12 + noise``; elsewhere the plain quotient."""
    import numpy as np

    r = diff / mean_b
    return np.where(np.abs(r) < 0.5, 1.0 + r, mean_a / mean_b)


def resample_means(dev: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``dev``, drawn in chunks of about
    ``BOOT_CHUNK`` values."""
    import numpy as np

    n = len(dev)
    out = np.empty(n_boot)
    per_chunk = max(1, BOOT_CHUNK // n)
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = dev[idx].mean(axis=1)
    return out


def ratio_interval(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    keys: tuple[Any, Any],
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
    n_boot: int,
    seed: int,
    confidence_level: float,
) -> tuple[float, float, str]:
    """Percentile bootstrap interval of ``mean_a / mean_b`` and how it was drawn.

    Resample means are kept as deviations from each level's shift, and each resampled ratio is
    ``1 + (mean_a* - mean_b*) / mean_b*`` with the shifts subtracted apart, so the interval
    keeps its digits for data such as ``1e12 + noise``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    boot: list[np.ndarray] = []
    if n_boot * (ga.n + gb.n) <= BOOT_MAX_DRAWS:
        method = "bootstrap"
        for g, key in zip((ga, gb), keys, strict=True):
            dev = level_values(con, sel, key, metric=metric, group=group) - g.shift
            boot.append(resample_means(dev, n_boot, rng))
    else:
        method = "bootstrap-normal"
        for g in (ga, gb):
            var_mle = g.var * (g.n - 1) / g.n
            boot.append(rng.normal(g.mean_dev, math.sqrt(var_mle / g.n), n_boot))
    dev_a, dev_b = boot
    denominator = gb.shift + dev_b
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ratio_of_means(
            (ga.shift - gb.shift) + (dev_a - dev_b), ga.shift + dev_a, denominator
        )
    zero = int(np.count_nonzero(denominator == 0))
    if zero:
        raise AnalysisError(
            f"the mean of {group}={gb.level} is 0 in {zero} of {n_boot} bootstrap resamples "
            f"(its {metric} values straddle 0), so the ratio's interval is undefined; "
            "pass n_boot=0 (--bootstrap 0) to skip it"
        )
    low, high = percentile_interval(ratios, confidence_level)
    return low, high, method


def fieller_of(
    ga: GroupMoments, gb: GroupMoments, *, equal_var: bool, confidence_level: float
) -> tuple[float, float]:
    """Fieller's interval of ``mean_a / mean_b`` with the t-test's variances and df (moments
    possibly scaled: the ratio does not change)."""
    if ga.var == 0 and gb.var == 0:
        return math.nan, math.nan
    if equal_var:
        pooled = pooled_var(ga.var, ga.n, gb.var, gb.n)
        se2_a, se2_b, df = pooled / ga.n, pooled / gb.n, float(ga.n + gb.n - 2)
    else:
        se2_a, se2_b = ga.var / ga.n, gb.var / gb.n
        df = welch_df(ga.var, ga.n, gb.var, gb.n)
    return fieller_interval(ga.mean, se2_a, gb.mean, se2_b, df, confidence_level)


def disagreement(result: TtestResult, boot: tuple[float, float]) -> str:
    """A sentence when the bootstrap interval and the test beside it disagree about 1."""
    if math.isnan(boot[0]) or math.isnan(result.p_value):
        return ""
    alpha = 1 - result.confidence_level
    boot_excludes = not boot[0] <= 1 <= boot[1]
    rejects = result.p_value < alpha
    if boot_excludes == rejects:
        return ""
    test = TITLES[result.test]
    return (
        f"the bootstrap interval of the ratio {'excludes' if boot_excludes else 'includes'} 1 "
        f"while the {test} {'does not reject' if not rejects else 'rejects'} at "
        f"{fmt(alpha)}: the percentile bootstrap ignores the t distribution's extra width and "
        "is too narrow with few trials"
        + (
            "; Fieller's interval is the one consistent with the test"
            if result.test != "mwu"
            else "; the U test compares the whole distributions, not the means"
        )
    )
