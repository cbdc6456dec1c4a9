"""The statistics of ``analyze compare`` for one configuration, from its two sides' summaries:
Mann-Whitney's U with the Hodges-Lehmann ratio and its distribution-free interval, or Welch's t
on the log values; and the verdict word."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import numpy as np

#: Above this many (base, new) pairs the ratio's interval is the log-scale Welch one.
HL_MAX_PAIRS = 4_000_000
#: Metrics where higher is better (a ratio above 1 is an improvement).
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "train_accuracy"})


@dataclass(frozen=True)
class Side:
    """One side of a configuration, as DuckDB summarised it: n, median, min, the mean and
    variance of ln x, the rank sum in the configuration's pooled sample, its tie term and the
    sorted values (None when too many to fetch)."""

    n: int
    median: float
    minimum: float
    log_mean: float | None
    log_var: float | None
    rank_sum: float
    tie_term: float
    values: list[float] | None


@dataclass(frozen=True)
class SideTest:
    """``new / base`` on the log scale (``shift``, ``low``, ``high``), p and where they come
    from, and a note (empty when nothing to say)."""

    shift: float
    low: float
    high: float
    p_value: float
    method: str
    ci_method: str
    note: str = ""


def u_null_cdf(m: int, n: int) -> list[float]:
    """``P(U <= u)`` for u = 0..mn under the null (no ties), from the generating function
    ``prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)`` in exact integers."""
    size = m * n + 1
    counts = [0] * size
    counts[0] = 1
    for i in range(1, m + 1):
        for u in range(size - 1, n + i - 1, -1):  # times (1 - q^(n+i))
            counts[u] -= counts[u - n - i]
        for u in range(i, size):  # divided by (1 - q^i)
            counts[u] += counts[u - i]
    total = math.comb(m + n, m)
    out, run = [], 0
    for c in counts:
        run += c
        out.append(run / total)
    return out


def hodges_lehmann(
    log_base: np.ndarray, log_new: np.ndarray, *, exact: bool, confidence_level: float
) -> tuple[float, float, float]:
    """``(shift, low, high)`` of ``log_new - log_base``: the median of the pairwise differences
    and the interval between the k-th smallest and largest of them, k from the U distribution
    (exact, or its normal approximation). ``-inf``/``inf`` when the samples are too small."""
    import numpy as np
    from scipy import special

    m, n = len(log_base), len(log_new)
    diffs = np.sort(np.subtract.outer(log_new, log_base).ravel())
    shift = float(np.median(diffs))
    tail = (1 - confidence_level) / 2
    if exact:
        cdf = u_null_cdf(min(m, n), max(m, n))
        k = 0
        while k < len(cdf) and cdf[k] <= tail:
            k += 1  # P(U <= k - 1) <= tail
    else:
        z = float(-special.ndtri(tail))
        k = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    if k < 1:
        return shift, -math.inf, math.inf
    return shift, float(diffs[k - 1]), float(diffs[m * n - k])


def exp_ratio(log_ratio: float) -> float:
    """``exp(log_ratio)``: ``inf`` past the largest double (1.8e308) instead of OverflowError;
    below the smallest it underflows to 0 as ``math.exp`` does."""
    try:
        return math.exp(log_ratio)
    except OverflowError:
        return math.inf


def beyond_double(log_ratio: float) -> bool:
    """Whether ``exp(log_ratio)`` is no normal double (it overflows to inf or falls below
    2.2e-308, losing digits or all of them)."""
    return math.isfinite(log_ratio) and not (
        math.log(sys.float_info.min) <= log_ratio <= math.log(sys.float_info.max)
    )


def ratio_text(log_ratio: float, digits: int = 4) -> str:
    """``exp(log_ratio)`` in scientific notation from its logarithm, any size: ``1e+600``."""
    decimal = log_ratio / math.log(10)
    exponent = math.floor(decimal)
    mantissa = 10 ** (decimal - exponent)
    if float(f"{mantissa:.{digits}g}") >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits}g}e{exponent:+d}"


def verdict_words(metric: str) -> tuple[str, str]:
    timing = metric.endswith("_s") or "throughput" in metric or metric.endswith("_ips")
    return ("faster", "slower") if timing else ("better", "worse")


def better_side(metric: str, better: str | None) -> str:
    if better is None:
        higher = metric in HIGHER_IS_BETTER or "throughput" in metric or metric.endswith("_ips")
        return "higher" if higher else "lower"
    if better not in ("lower", "higher"):
        raise AnalysisError(f"--better {better!r}: give lower or higher")
    return better


def verdict(
    ratio: float, p_value: float, *, alpha: float, threshold: float, better: str, metric: str
) -> str:
    if not p_value < alpha:
        return "~"
    if abs(ratio - 1) < threshold:
        return "within noise"
    good, bad = verdict_words(metric)
    improved = ratio < 1 if better == "lower" else ratio > 1
    return good if improved else bad


def log_welch(
    mean_b: float | None,
    var_b: float | None,
    n_b: int,
    mean_n: float | None,
    var_n: float | None,
    n_n: int,
    confidence_level: float,
) -> tuple[float, float, float, float]:
    """``(shift, low, high, p)`` of Welch's t on the log values (NaN with < 2 trials a side).
    The t quantile and tail come from :mod:`analysis.intervals` (``scipy.special``, the values
    of ``scipy.stats.t``), so this path does not import ``scipy.stats``."""
    from analysis.intervals import t_ppf, t_sf
    from analysis.twosample import welch_df

    if n_b < 2 or n_n < 2 or mean_b is None or mean_n is None:
        shift = (mean_n or math.nan) - (mean_b or math.nan)
        return shift, -math.inf, math.inf, math.nan
    vb, vn = float(var_b or 0.0), float(var_n or 0.0)
    shift = float(mean_n) - float(mean_b)
    se = math.sqrt(vb / n_b + vn / n_n)
    if se == 0:
        return shift, shift, shift, 0.0 if shift else 1.0
    df = welch_df(vn, n_n, vb, n_b)
    q = t_ppf((1 + confidence_level) / 2, df)
    p = 2 * t_sf(abs(shift / se), df)
    return shift, shift - q * se, shift + q * se, p


def side_test(
    base: Side, new: Side, *, test: str, alpha: float, confidence_level: float
) -> SideTest:
    """Mann-Whitney (``test="mwu"``: exact p for small samples without ties, as scipy; the
    Hodges-Lehmann interval when the values were fetched and the pairs are few enough, else the
    log-scale Welch one) or Welch's t on the log values (``"welch"``)."""
    from analysis.mwu import mwu_asymptotic, mwu_uses_exact

    nb, nn = base.n, new.n
    if test != "mwu":
        shift, lo, hi, p = log_welch(base.log_mean, base.log_var, nb, new.log_mean,
                                     new.log_var, nn, confidence_level)  # fmt: skip
        return SideTest(shift, lo, hi, p, "t", "log-welch",
                        "needs 2 trials per side" if nb < 2 or nn < 2 else "")  # fmt: skip
    import numpy as np

    u_new = float(new.rank_sum) - nn * (nn + 1) / 2.0
    _, p = mwu_asymptotic(u_new, nn, nb, float(base.tie_term))
    listed = base.values is not None and new.values is not None
    exact = listed and mwu_uses_exact(nn, nb, u_new, float(base.tie_term))
    method = "asymptotic"
    if exact:
        from scipy import stats  # only here: importing scipy.stats costs about 0.5 CPU s

        xb, xn = np.asarray(base.values, dtype=float), np.asarray(new.values, dtype=float)
        p = float(stats.mannwhitneyu(xn, xb, method="exact").pvalue)
        method = "exact"
    if listed and nb * nn <= HL_MAX_PAIRS:
        xb, xn = np.asarray(base.values, dtype=float), np.asarray(new.values, dtype=float)
        shift, lo, hi = hodges_lehmann(np.log(xb), np.log(xn), exact=exact,
                                       confidence_level=confidence_level)  # fmt: skip
        ci_method = "hodges-lehmann"
    else:
        shift, lo, hi = log_welch(base.log_mean, base.log_var, nb, new.log_mean, new.log_var,
                                  nn, confidence_level)[:3]  # fmt: skip
        ci_method = "log-welch"
    note = ""
    if method == "exact" and 2 / math.comb(nb + nn, nb) > alpha:
        need = next(s for s in range(2, 50) if 2 / math.comb(2 * s, s) <= alpha)
        note = f"need >= {need} trials per side to detect a change at alpha {alpha:g}"
    return SideTest(shift, lo, hi, p, method, ci_method, note)
