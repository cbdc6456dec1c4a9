"""Power of a two-sample comparison: how many trials per group would detect a given relative
difference of means, and the smallest difference the trials at hand can detect.

From the per-group sufficient statistics of two levels (computed in DuckDB, as the t-test's), with
the pooled standard deviation as the noise: a two-sided two-sample t-test at ``alpha``, Cohen's
``d = effect * |mean_b| / sd_pooled`` (the difference relative to level ``b``, the baseline).
The power is that of the pooled t statistic under the alternative, a noncentral t with
``n_a + n_b - 2`` degrees of freedom and noncentrality ``d * sqrt(n_a n_b / (n_a + n_b))``; the
sample size is the smallest integer n per group that reaches the target power (power grows with
n), the detectable effect the root of power(d) = target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from analysis.anova_checks import metric_scale
from analysis.anova_text import wrap
from analysis.data import (
    Database,
    Filter,
    GroupMoments,
    Selection,
    connect,
    fmt,
    group_moments,
    render_table,
)
from analysis.errors import AnalysisError
from analysis.intervals import t_isf
from analysis.options import ALPHA, check_alpha, check_fraction
from analysis.smallsample import small_sample_note
from analysis.tables import Table
from analysis.ttest import mean_difference, pooled_var, two_levels

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PowerResult:
    """Trials per group needed for ``effect`` at ``power``, and what the current n detects."""

    metric: str
    group: str
    a: str
    b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_pooled: float
    effect: float  # relative difference of means to detect (0.1: 10 % of mean_b)
    alpha: float
    power: float
    cohens_d: float  # of ``effect``
    n_per_group: int | None  # trials per group needed for ``effect`` at ``power``; None: > MAX_N
    achieved_power: float  # power to detect ``effect`` with n_a, n_b trials
    mde: float  # minimum detectable difference at the current n (metric units)
    mde_relative: float  # ... as a fraction of |mean_b|
    observed_relative: float  # (mean_a - mean_b) / |mean_b|
    where: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row: every field (``where`` and ``notes`` joined into one string each)."""
        import pandas as pd

        row = self.to_dict()
        row["where"] = " AND ".join(self.where)
        row["notes"] = "; ".join(self.notes)
        return pd.DataFrame([row])

    def _needed(self) -> str:
        return str(self.n_per_group) if self.n_per_group is not None else f"more than {MAX_N:,}"

    def tables(self) -> list[Table]:
        """One table, ``power``: :meth:`to_frame`, which carries every number of the text."""
        return [Table("power", self.to_frame(), f"Power of a t-test of {self.metric}")]

    def __str__(self) -> str:
        rows = [
            [f"{self.group}={self.a}", self.n_a, fmt(self.mean_a)],
            [f"{self.group}={self.b}", self.n_b, fmt(self.mean_b)],
        ]
        lines = [
            f"power of a two-sided t-test of {self.metric}: {self.group}={self.a} vs {self.b}",
            render_table(["level", "n", "mean"], rows),
            f"pooled sd {fmt(self.sd_pooled)}; observed difference "
            f"{100 * self.observed_relative:+.2f}% of {self.group}={self.b}",
            f"to detect {100 * self.effect:g}% (d = {self.cohens_d:.3f}) with power "
            f"{self.power:g} at alpha {self.alpha:g}: {self._needed()} trials per group "
            f"(now {self.n_a} and {self.n_b}: power {self.achieved_power:.3f})",
            f"smallest difference detectable now: {fmt(self.mde)} "
            f"({100 * self.mde_relative:.2f}% of {self.group}={self.b})",
        ]
        if self.where:
            lines.append(wrap("where " + " AND ".join(self.where)))
        lines += [wrap(n, prefix="note: ") for n in self.notes]
        return "\n".join(lines)


#: Past ``NC_SATURATED * (crit + 1)`` the power is 1 in double precision, even with 2 degrees
#: of freedom (the miss probability is below ``exp(-NC_SATURATED**2)``).
NC_SATURATED = 64.0


def t_test_power(d: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of the two-sided pooled two-sample t-test for a standardised difference ``d``.

    The power grows with the noncentrality ``nc``, so ``nc`` is capped where the power is
    already 1: scipy's noncentral t returns NaN beyond about 1e9, which a relative effect of
    times such as ``1e12 + tiny noise`` reaches (``d = effect * mean / sd``).
    """
    df = n_a + n_b - 2
    crit = t_isf(alpha / 2, df)  # not ppf(1 - alpha / 2): accurate for tiny alpha
    nc = min(d * math.sqrt(n_a * n_b / (n_a + n_b)), NC_SATURATED * (crit + 1))
    upper, lower = _nct_sf_cdf(crit, -crit, df, nc)  # lower NaN from scipy when nc >> crit
    return upper + (lower if math.isfinite(lower) else 0.0)


def _nct_sf_cdf(x_sf: float, x_cdf: float, df: float, nc: float) -> tuple[float, float]:
    """``scipy.stats.nct.sf(x_sf, df, nc)`` and ``nct.cdf(x_cdf, df, nc)`` by the special
    functions they call (``_nct_sf`` clipped to [0, 1], ``nctdtr``) for finite arguments."""
    if all(math.isfinite(v) for v in (x_sf, x_cdf, df, nc)) and df > 0:
        import numpy as np
        from scipy import special
        from scipy.special import _ufuncs

        with np.errstate(over="ignore"):  # as scipy.stats (gh-17432)
            upper = float(np.clip(_ufuncs._nct_sf(x_sf, df, nc), 0, 1))
        return upper, float(special.nctdtr(df, nc, x_cdf))
    from scipy import stats

    return float(stats.nct.sf(x_sf, df, nc)), float(stats.nct.cdf(x_cdf, df, nc))


#: Beyond this many trials per group the answer is "more than you will run".
MAX_N = 10**7


def _smallest_n(d: float, alpha: float, power: float) -> int | None:
    """The smallest n >= 2 per group with power >= ``power`` (doubling, then bisection); None
    when even ``MAX_N`` trials per group are not enough (an answer, not an error: the effect
    is smaller than the noise lets any practical run see)."""
    if t_test_power(d, 2, 2, alpha) >= power:
        return 2
    high = 4
    while t_test_power(d, high, high, alpha) < power:
        if high > MAX_N:
            return None
        high *= 2
    low = high // 2  # power(low) < target <= power(high)
    while high - low > 1:
        mid = (low + high) // 2
        if t_test_power(d, mid, mid, alpha) >= power:
            high = mid
        else:
            low = mid
    return high if high <= MAX_N else None


def _upper(n_a: int, n_b: int, alpha: float, power: float) -> float:
    """A standardised difference whose power exceeds ``power`` at n_a, n_b."""
    d = 1.0
    while t_test_power(d, n_a, n_b, alpha) < power:
        d *= 2
    return d


def power_from_moments(
    n_a: int,
    mean_a: float,
    var_a: float,
    n_b: int,
    mean_b: float,
    var_b: float,
    *,
    effect: float,
    alpha: float = ALPHA,
    power: float = 0.8,
) -> dict[str, float]:
    """The sample size and detectable effect of a two-sided two-sample t-test (pooled sd)."""
    alpha = check_alpha(alpha)
    power = check_fraction(power, "--power", example="0.8")
    if not math.isfinite(effect) or effect <= 0:
        raise AnalysisError(f"--effect must be a positive difference such as 10%, got {effect:g}")
    if n_a < 2 or n_b < 2:
        raise AnalysisError(
            f"power needs at least 2 trials in each level to estimate the noise, got {n_a} and "
            f"{n_b}; run more trials (runner trials --n)"
        )
    pooled = pooled_var(var_a, n_a, var_b, n_b)
    if not math.isfinite(pooled) or not math.isfinite(mean_a + mean_b):
        raise AnalysisError("the metric has non-finite values; select trials with finite values")
    if pooled <= 0:
        raise AnalysisError(
            "both levels have zero variance: any difference is detected with 2 trials; power "
            "analysis needs trials that vary"
        )
    if mean_b == 0:
        raise AnalysisError(
            "the baseline level's mean is 0, so a relative --effect has no size; swap --a/--b"
        )
    sd = math.sqrt(pooled)
    d = effect * abs(mean_b) / sd
    needed = _smallest_n(d, alpha, power)
    d_min = _brentq(
        lambda e: t_test_power(e, n_a, n_b, alpha) - power, 0.0, _upper(n_a, n_b, alpha, power)
    )
    return {
        "sd_pooled": sd,
        "cohens_d": d,
        "n_per_group": needed,
        "achieved_power": t_test_power(d, n_a, n_b, alpha),
        "mde": float(d_min) * sd,
        "mde_relative": float(d_min) * sd / abs(mean_b),
    }


#: ``scipy.optimize.brentq``'s default tolerances and iteration limit
BRENTQ_XTOL, BRENTQ_RTOL, BRENTQ_MAXITER = 2e-12, 4 * 2.220446049250313e-16, 100


def _brentq(
    f: Callable[[float], float],
    xa: float,
    xb: float,
    *,
    xtol: float = BRENTQ_XTOL,
    rtol: float = BRENTQ_RTOL,
    maxiter: int = BRENTQ_MAXITER,
) -> float:
    """``scipy.optimize.brentq(f, xa, xb)``: scipy's C routine (``Zeros/brentq.c``) step for
    step, so the same root to the bit, without importing scipy.optimize (about 0.4 s: it
    imports scipy.linalg and scipy.sparse). The same errors: ValueError when ``f`` is NaN or
    has one sign at both ends, RuntimeError when it does not converge in ``maxiter``."""

    def call(x: float) -> float:
        fx = float(f(x))
        if math.isnan(fx):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    xpre, xcur = float(xa), float(xb)
    xblk = fblk = spre = scur = 0.0
    fpre, fcur = call(xpre), call(xcur)
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    if math.copysign(1.0, fpre) == math.copysign(1.0, fcur):
        raise ValueError("f(a) and f(b) must have different signs")
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and math.copysign(1.0, fpre) != math.copysign(1.0, fcur):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):  # good short step
                spre, scur = scur, stry
            else:  # bisect
                spre = scur = sbis
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = call(xcur)
    raise RuntimeError(f"Failed to converge after {maxiter} iterations, value is {xcur}.")


def power(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    effect: float = 0.1,
    metric: str = "train_s",
    alpha: float = ALPHA,
    target_power: float = 0.8,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> PowerResult:
    """Trials per group needed to detect a relative difference ``effect`` of ``metric`` between
    ``group=a`` and ``group=b`` (baseline b) at ``target_power``, with the observed variance."""
    with connect(db) as con:
        sel, ga, gb = two_levels(
            con, group=group, a=a, b=b, metric=metric, where=where, include_warmup=include_warmup
        )
        # values beyond 2**400 or below 2**-400: moments of metric / scale (a power of two)
        scale = metric_scale(con, sel, metric=metric)
        sa, sb = ga, gb
        if scale != 1.0:
            scaled = {g.level: g for g in group_moments(con, sel, metric=metric, group=group,
                                                        scale=scale)}  # fmt: skip
            sa, sb = scaled[ga.level], scaled[gb.level]
    return power_of_pair(sel, (ga, gb), (sa, sb), scale, group=group, metric=metric,
                         effect=effect, alpha=alpha, target_power=target_power)  # fmt: skip


def power_of_pair(
    sel: Selection,
    pair: tuple[GroupMoments, GroupMoments],
    scaled: tuple[GroupMoments, GroupMoments],
    scale: float,
    *,
    group: str,
    metric: str,
    effect: float,
    alpha: float,
    target_power: float,
) -> PowerResult:
    """:func:`power` from the two levels' moments (unscaled, and of ``metric / scale``)."""
    ga, gb = pair
    sa, sb = scaled
    out = power_from_moments(
        sa.n,
        sa.mean,
        sa.var,
        sb.n,
        sb.mean,
        sb.var,
        effect=effect,
        alpha=alpha,
        power=target_power,
    )
    out["sd_pooled"] *= scale
    out["mde"] *= scale
    return PowerResult(
        metric=metric,
        group=group,
        a=ga.level,
        b=gb.level,
        n_a=ga.n,
        n_b=gb.n,
        mean_a=ga.mean,
        mean_b=gb.mean,
        effect=effect,
        alpha=alpha,
        power=target_power,
        observed_relative=mean_difference(ga, gb) / abs(gb.mean),
        where=sel.where_text,
        notes=_notes(group, ga.level, ga.n, gb.level, gb.n),
        **out,  # type: ignore[arg-type]
    )


def _notes(group: str, a: str, n_a: int, b: str, n_b: int) -> tuple[str, ...]:
    """The small-sample note: below 5 trials the variance the answer rests on is a guess."""
    few = small_sample_note([(a, n_a), (b, n_b)], what=f"{group}=")
    if few is None:
        return ()
    return (few + "; the sample sizes above rest on a variance estimated from these few trials",)
