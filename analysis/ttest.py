"""Two-sample comparison of a metric between two levels of one factor: Welch's t-test (default),
Student's t-test or the Mann-Whitney U test, each with Cohen's d, Hedges' g, both medians and the
ratio of means with a percentile bootstrap interval.

The t-tests use per-group sufficient statistics computed in DuckDB; Mann-Whitney uses the
per-level mid-rank sums and tie term ranked in DuckDB (:mod:`analysis.ranks`), and the medians are
DuckDB's. Python sees raw rows of the two levels only where a statistic needs them and they are
few: scipy's exact Mann-Whitney distribution (small samples without ties) and the bootstrap while
``n_boot * (n_a + n_b) <= BOOT_MAX_DRAWS``, drawn in chunks of about ``BOOT_CHUNK`` values; beyond
that each bootstrap mean is drawn from its large-sample limit ``N(mean, var_mle / n)``, so a
million-trial database is never resampled row by row. NumPy and scipy are imported inside the
functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from analysis.bootstrap import percentile_interval
from analysis.data import (
    VIEW,
    Database,
    Filter,
    GroupMoments,
    Selection,
    connect,
    execute,
    fmt,
    format_level,
    group_moments,
    load_groups,
    moment_scale,
    p_text,
    quote,
    render_table,
)
from analysis.errors import AnalysisError
from analysis.intervals import t_interval
from analysis.smallsample import small_sample_note

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

#: The tests ``ttest(test=...)`` runs.
TESTS = ("welch", "student", "mwu")
_TITLES = {"welch": "Welch t-test", "student": "Student t-test", "mwu": "Mann-Whitney U test"}
#: A bootstrap that would draw more values than this (``n_boot * (n_a + n_b)``) draws each
#: resample mean from its normal limit instead (``ratio_ci_method = "bootstrap-normal"``).
BOOT_MAX_DRAWS = 50_000_000
#: About this many values are drawn at a time while resampling rows (bounds the memory used).
BOOT_CHUNK = 1 << 22
#: scipy's ``mannwhitneyu(method="auto")`` uses the exact U distribution when a level has at
#: most 8 trials and no value ties; its cost grows with ``min(U, n_a n_b - U) ** 2``, so beyond
#: this we use the normal approximation (``method = "asymptotic"``) even there.
MWU_EXACT_MAX_U = 10_000
_MWU_EXACT_MAX_N = 8


#: Bounds on ``n_boot``: fewer resamples make no percentile interval; more exhaust memory.
MIN_BOOT, MAX_BOOT = 100, 10_000_000


@dataclass(frozen=True)
class TtestResult:
    """``metric`` at ``group=a`` against ``group=b``: a two-sample test and its effect sizes.

    ``test`` is ``welch``, ``student`` or ``mwu``. ``statistic`` is t for the t-tests and, for
    ``mwu``, the U of ``a`` (scipy's ``mannwhitneyu(x=a, y=b).statistic``: the pairs with
    a > b, ties counting 1/2). ``method`` says where ``p_value`` (two-sided) comes from: ``t``
    (t distribution), ``exact`` (exact U distribution, as scipy) or ``asymptotic`` (normal
    approximation with tie and continuity corrections, as scipy's ``method="asymptotic"``).
    ``df``, ``ci_low`` and ``ci_high`` (the t interval of ``mean_diff``) are NaN for ``mwu``;
    ``z``, ``rank_biserial`` and ``cles`` are NaN for the t-tests.

    Every test reports ``mean_diff = mean_a - mean_b``, ``cohens_d = mean_diff / pooled sd``
    and ``hedges_g = J(df) * cohens_d`` with Hedges' exact small-sample factor
    ``J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))``, ``df = n_a + n_b - 2`` (pingouin's
    ``compute_effsize(eftype="hedges")`` uses the approximation ``1 - 3 / (4 df - 1)``, about
    ``0.035 / df^2`` relative above the exact factor: 4e-4 at ``df = 10``). Both are NaN only
    for ``mwu`` when neither level varies (the t-tests refuse such data). The
    medians are DuckDB's (mean of the middle two for an even count, as ``np.median``).

    Mann-Whitney: ``z`` is ``U - n_a n_b / 2`` moved 0.5 towards 0 (continuity) over its
    tie-corrected sd, signed so that it is positive when a tends to be larger (0 when
    ``|U - n_a n_b / 2| <= 0.5``; reported with the exact p too). ``cles = U / (n_a n_b) =
    P(a > b) + P(a = b) / 2``, the common-language effect size (probability of superiority);
    ``rank_biserial = 2 cles - 1 = 1 - 2 U_b / (n_a n_b)`` in [-1, 1], positive when a tends to
    be larger (pingouin's ``RBC`` of ``mwu(x=a, y=b)``).

    ``ratio = mean_a / mean_b``, with the percentile bootstrap interval
    ``[ratio_ci_low, ratio_ci_high]`` at ``confidence_level`` from ``n_boot`` resamples
    (``seed``), each level resampled independently. ``ratio_ci_method``: ``bootstrap``
    (resampled rows), ``bootstrap-normal`` (each resample mean drawn from
    ``N(mean, var_mle / n)``, the limit of its bootstrap distribution, used when resampling
    would draw more than ``BOOT_MAX_DRAWS`` values) or ``none`` (``n_boot = 0``: no interval;
    the ratio itself is NaN only when ``mean_b`` is 0).

    ``[ratio_fieller_low, ratio_fieller_high]`` is Fieller's interval of ``mean_a / mean_b``:
    the ratios r whose ``mean_a - r mean_b`` a t-test does not reject, with the variances and
    degrees of freedom of the test beside it (Welch's, or Student's pooled variance), so it
    excludes 1 exactly when that test's ``p_value < 1 - confidence_level``. For ``mwu`` it
    comes from Welch's t on the same data and may disagree with the U test (a note says so).
    NaN when ``mean_b`` is not clearly away from 0 (the set of ratios is then unbounded). The
    bootstrap interval ignores the t distribution's extra width and is too narrow with few
    trials; a note says when it and the test disagree.
    """

    metric: str
    group: str
    a: str
    b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    statistic: float
    df: float
    p_value: float
    mean_diff: float
    ci_low: float
    ci_high: float
    cohens_d: float
    equal_var: bool
    where: tuple[str, ...]
    test: str = "welch"
    method: str = "t"
    hedges_g: float = math.nan
    median_a: float = math.nan
    median_b: float = math.nan
    z: float = math.nan
    rank_biserial: float = math.nan
    cles: float = math.nan
    ratio: float = math.nan
    ratio_ci_low: float = math.nan
    ratio_ci_high: float = math.nan
    ratio_ci_method: str = "none"
    n_boot: int = 0
    seed: int = 0
    confidence_level: float = 0.95
    notes: tuple[str, ...] = ()
    ratio_fieller_low: float = math.nan
    ratio_fieller_high: float = math.nan

    @property
    def standard_error(self) -> float:
        """Standard error of ``mean_diff`` (pooled when ``equal_var``)."""
        return _standard_error(
            self.sd_a**2, self.n_a, self.sd_b**2, self.n_b, equal_var=self.equal_var
        )

    def confidence_interval(self, confidence_level: float = 0.95) -> tuple[float, float]:
        """Two-sided t interval of ``mean_diff`` at ``confidence_level`` (no refit)."""
        if self.test == "mwu":
            raise AnalysisError(
                "a Mann-Whitney result has no t interval of mean_diff; run test='welch' for one"
            )
        return t_interval(self.mean_diff, self.standard_error, self.df, confidence_level)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["where"] = list(self.where)
        out["notes"] = list(self.notes)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row: every field of the result (``where`` joined with spaces, ``notes`` with
        ``; ``)."""
        import pandas as pd

        row = self.to_dict()
        row["where"] = " ".join(self.where)
        row["notes"] = "; ".join(self.notes)
        return pd.DataFrame([row])

    def __str__(self) -> str:
        where = f"; where {' '.join(self.where)}" if self.where else ""
        head = f"{_TITLES[self.test]} of {self.metric}: {self.group}={self.a} vs {self.b}{where}"
        if self.test == "mwu" and self.method == "asymptotic":
            head += "\np from the normal approximation, not the exact distribution (see note)"
        table = render_table(
            [self.group, "n", f"mean {self.metric}", "sd", "median"],
            [
                (self.a, self.n_a, self.mean_a, self.sd_a, self.median_a),
                (self.b, self.n_b, self.mean_b, self.sd_b, self.median_b),
            ],
        )
        pct = f"{fmt(100 * self.confidence_level)}%"
        diff = f"mean_diff ({self.a} - {self.b}) = {fmt(self.mean_diff)}"
        if math.isnan(self.cohens_d):
            effect = "cohens_d and hedges_g undefined (neither level varies)"
        else:
            effect = f"cohens_d = {fmt(self.cohens_d, 4)}, hedges_g = {fmt(self.hedges_g, 4)}"
        if self.test == "mwu":
            how = (
                "exact"
                if self.method == "exact"
                else "normal approximation, tie and continuity corrected"
            )
            lines = [
                f"U = {fmt(self.statistic)}, z = {fmt(self.z, 4)}, {p_text(self.p_value)} ({how})",
                f"rank_biserial = {fmt(self.rank_biserial, 4)} (> 0: {self.a} tends to be larger), "
                f"cles = P({self.a} > {self.b}) + P(tie)/2 = {fmt(self.cles, 4)}",
                f"{diff}, {effect}",
            ]
        else:
            lines = [
                f"{diff}, {pct} CI [{fmt(self.ci_low)}, {fmt(self.ci_high)}]",
                f"t({fmt(self.df)}) = {fmt(self.statistic)}, {p_text(self.p_value)}, {effect}",
            ]
        ratio = f"ratio ({self.a} / {self.b}) = {fmt(self.ratio)}"
        if math.isnan(self.ratio):
            ratio = f"ratio ({self.a} / {self.b}) undefined (mean of {self.b} is 0)"
        else:
            which = "Welch's t" if self.test != "student" else "Student's t"
            if math.isnan(self.ratio_fieller_low):
                ratio += f", {pct} CI unbounded (Fieller: the mean of {self.b} is not clearly "
                ratio += "away from 0)"
            else:
                ratio += (
                    f", {pct} CI [{fmt(self.ratio_fieller_low)}, {fmt(self.ratio_fieller_high)}]"
                    f" (Fieller, from {which}"
                    + (
                        ": excludes 1 exactly when that test rejects)"
                        if self.test != "mwu"
                        else " on the same data, not from the U test)"
                    )  # fmt: skip
                )
            if self.ratio_ci_method == "none":
                ratio += " (no bootstrap interval)"
            else:
                source = (
                    "" if self.ratio_ci_method == "bootstrap" else ", normal limit of the means"
                )
                ratio += (
                    f"\n  bootstrap {pct} CI [{fmt(self.ratio_ci_low)}, "
                    f"{fmt(self.ratio_ci_high)}] (percentile bootstrap, {self.n_boot} "
                    f"resamples, seed {self.seed}{source})"
                )
        return "\n".join([head, table, *lines, ratio, *(f"note: {n}" for n in self.notes)])


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


def _standard_error(var_a: float, n_a: int, var_b: float, n_b: int, *, equal_var: bool) -> float:
    if equal_var:
        return math.sqrt(pooled_var(var_a, n_a, var_b, n_b) * (1.0 / n_a + 1.0 / n_b))
    return math.sqrt(var_a / n_a + var_b / n_b)


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite degrees of freedom of the difference of two means."""
    va, vb = var_a / n_a, var_b / n_b
    return (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))


def _check_sizes(ga: GroupMoments, gb: GroupMoments, *, metric: str, group: str, what: str) -> None:
    for g in (ga, gb):
        if g.n < 2:
            raise AnalysisError(
                f"--group {group}: level {g.level} has only {g.n} trial with {metric}; {what} "
                "needs at least 2 per level: run more trials or compare other levels"
            )


def _describe(ga: GroupMoments, gb: GroupMoments, *, metric: str, group: str) -> dict[str, Any]:
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


def ttest_from_moments(
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
    equal_var: bool = False,
    where: tuple[str, ...] = (),
    confidence_level: float = 0.95,
) -> TtestResult:
    """The t-test (Welch, or Student when ``equal_var``) from the two groups' moments."""
    from scipy import stats

    _check_sizes(ga, gb, metric=metric, group=group, what="a t-test")
    if ga.var == 0 and gb.var == 0:
        raise AnalysisError(
            f"{metric} has zero variance in both {group}={ga.level} and {group}={gb.level} "
            "(all values equal), so the t statistic is undefined; check the data, pick "
            "another --metric, or use the Mann-Whitney test"
        )
    mean_diff = mean_difference(ga, gb)
    se = _standard_error(ga.var, ga.n, gb.var, gb.n, equal_var=equal_var)
    df = float(ga.n + gb.n - 2) if equal_var else welch_df(ga.var, ga.n, gb.var, gb.n)
    statistic = mean_diff / se
    p_value = float(2 * stats.t.sf(abs(statistic), df))
    ci_low, ci_high = t_interval(mean_diff, se, df, confidence_level)
    cohens_d, hedges_g = effect_sizes(ga, gb)
    return TtestResult(
        **_describe(ga, gb, metric=metric, group=group),
        statistic=float(statistic),
        df=float(df),
        p_value=p_value,
        mean_diff=mean_diff,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        cohens_d=cohens_d,
        equal_var=equal_var,
        where=where,
        test="student" if equal_var else "welch",
        method="t",
        hedges_g=hedges_g,
        confidence_level=confidence_level,
    )


# -- Mann-Whitney U ----------------------------------------------------------------------------
def mwu_asymptotic(u_a: float, n_a: int, n_b: int, tie_term: float) -> tuple[float, float]:
    """``(z, p)`` of U (of level a) from the normal approximation, with the tie correction and
    the continuity correction of ``scipy.stats.mannwhitneyu(method="asymptotic")``;
    ``tie_term`` is ``sum(t^3 - t)`` over groups of tied values in the pooled sample. ``z`` is
    signed (positive when a tends to be larger); ``p`` is two-sided."""
    from scipy import special

    n = n_a + n_b
    mu = n_a * n_b / 2.0
    var = n_a * n_b / 12.0 * ((n + 1) - tie_term / (n * (n - 1.0)))
    dev = abs(u_a - mu) - 0.5  # scipy: (max(U_a, U_b) - mu - 0.5) / sd
    if dev <= 0 or not var > 0:
        # |U - mu| <= 0.5 (every value tied included): scipy's p clips to 1
        return 0.0, 1.0
    z = dev / math.sqrt(var)
    return math.copysign(z, u_a - mu), min(1.0, float(2.0 * special.ndtr(-z)))


def _mwu_uses_exact(n_a: int, n_b: int, u_a: float, tie_term: float) -> bool:
    """scipy's ``method="auto"`` rule (a level of at most 8 trials, no ties), limited to the
    U values whose exact distribution is cheap (``MWU_EXACT_MAX_U``)."""
    small = min(n_a, n_b) <= _MWU_EXACT_MAX_N
    return small and tie_term == 0 and min(u_a, n_a * n_b - u_a) <= MWU_EXACT_MAX_U


def _approximation_note(n_a: int, n_b: int, u_a: float, tie_term: float) -> str:
    """Why Mann-Whitney's p comes from the normal approximation, not the exact distribution."""
    if min(n_a, n_b) > _MWU_EXACT_MAX_N:
        why = f"both levels have more than {_MWU_EXACT_MAX_N} trials ({n_a} and {n_b})"
    elif tie_term:
        why = "values are tied (the exact distribution assumes no ties)"
    else:
        why = (
            f"U is too large for the exact distribution to be computed cheaply "
            f"(min(U, n_a n_b - U) = {min(u_a, n_a * n_b - u_a):g} > {MWU_EXACT_MAX_U})"
        )
    return (
        f"p from the normal approximation (tie and continuity corrected), not the exact U "
        f"distribution: {why}"
    )


def _mann_whitney(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    keys: tuple[Any, Any],
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
) -> dict[str, Any]:
    """U, p, z, rank-biserial and CLES of level a against level b, from DuckDB's ranks."""
    from analysis.ranks import rank_sums

    ranks = rank_sums(con, sel, metric=metric, group=group, levels=[ga.level, gb.level])
    n_a, rank_sum_a = ranks.of(ga.level)
    n_b, _ = ranks.of(gb.level)
    u_a = rank_sum_a - n_a * (n_a + 1) / 2.0
    z, p_value = mwu_asymptotic(u_a, n_a, n_b, ranks.tie_term)
    method = "asymptotic"
    if _mwu_uses_exact(n_a, n_b, u_a, ranks.tie_term):
        from scipy import stats

        x = _level_values(con, sel, keys[0], metric=metric, group=group)
        y = _level_values(con, sel, keys[1], metric=metric, group=group)
        p_value = float(stats.mannwhitneyu(x, y, method="exact").pvalue)
        method = "exact"
    cles = u_a / (n_a * n_b)
    return {
        "notes": () if method == "exact" else (_approximation_note(n_a, n_b, u_a, ranks.tie_term),),
        "statistic": float(u_a),
        "p_value": p_value,
        "method": method,
        "z": z,
        "cles": cles,
        "rank_biserial": 2.0 * cles - 1.0,
    }


def _mwu_result(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    keys: tuple[Any, Any],
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
    confidence_level: float,
) -> TtestResult:
    """The Mann-Whitney result (without medians and ratio): the rank test, the moments and
    Cohen's d / Hedges' g."""
    _check_sizes(ga, gb, metric=metric, group=group, what="the comparison")
    cohens_d, hedges_g = effect_sizes(ga, gb)
    return TtestResult(
        **_describe(ga, gb, metric=metric, group=group),
        df=math.nan,
        mean_diff=mean_difference(ga, gb),
        ci_low=math.nan,
        ci_high=math.nan,
        cohens_d=cohens_d,
        hedges_g=hedges_g,
        equal_var=False,
        where=sel.where_text,
        test="mwu",
        confidence_level=confidence_level,
        **_mann_whitney(con, sel, keys, ga, gb, metric=metric, group=group),
    )


# -- the two levels' rows in DuckDB ------------------------------------------------------------
def _level_keys(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    levels: Sequence[str],
    *,
    metric: str,
    group: str,
) -> tuple[Any, ...]:
    """The stored values of ``group`` behind the formatted ``levels`` (to bind as parameters)."""
    m, g = quote(metric), quote(group)
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    raw = execute(con, f"SELECT DISTINCT {g} FROM {VIEW}{where_sql}", sel.params)
    stored = {format_level(r[0]): r[0] for r in raw}
    return tuple(stored[level] for level in levels)


def _level_where(sel: Selection, key: Any, *, metric: str, group: str) -> tuple[str, list[Any]]:
    where_sql = sel.where_and(f"{quote(metric)} IS NOT NULL", f"{quote(group)} = ?")
    return where_sql, [*sel.params, key]


def _level_median(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    g: GroupMoments,
    key: Any,
    *,
    metric: str,
    group: str,
) -> float:
    """The level's median from DuckDB (of ``metric - shift``, shift added back); NaN and
    infinite values are refused."""
    where_sql, params = _level_where(sel, key, metric=metric, group=group)
    x = f"CAST({quote(metric)} AS DOUBLE)"
    sql = (
        f"SELECT count(*) FILTER (WHERE NOT isfinite({x})), median({x} - ?) FROM {VIEW}{where_sql}"
    )
    bad, median_dev = execute(con, sql, [g.shift, *params])[0]
    if bad:
        raise AssertionError("finite_check let a non-finite value through")
    return g.shift + float(median_dev)


def _level_values(
    con: duckdb.DuckDBPyConnection, sel: Selection, key: Any, *, metric: str, group: str
) -> np.ndarray:
    """The level's values of ``metric`` (float64), fetched from DuckDB."""
    import numpy as np

    where_sql, params = _level_where(sel, key, metric=metric, group=group)
    sql = f"SELECT CAST({quote(metric)} AS DOUBLE) AS x FROM {VIEW}{where_sql}"
    return np.asarray(con.execute(sql, params).fetchnumpy()["x"], dtype=np.float64)


# -- ratio of means ------------------------------------------------------------------------------
def ratio_of_means(diff: Any, mean_a: Any, mean_b: Any) -> Any:
    """``mean_a / mean_b`` (floats or arrays) given also ``diff = mean_a - mean_b`` computed
    without cancellation: near 1 it is ``1 + diff / mean_b``, which keeps ``ratio - 1`` to full
    precision for data such as ``1e12 + noise``; elsewhere the plain quotient."""
    import numpy as np

    r = diff / mean_b
    return np.where(np.abs(r) < 0.5, 1.0 + r, mean_a / mean_b)


def _resample_means(dev: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
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


def _ratio_interval(
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
            dev = _level_values(con, sel, key, metric=metric, group=group) - g.shift
            boot.append(_resample_means(dev, n_boot, rng))
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


def _fieller(
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


def _disagreement(result: TtestResult, boot: tuple[float, float]) -> str:
    """A sentence when the bootstrap interval and the test beside it disagree about 1."""
    if math.isnan(boot[0]) or math.isnan(result.p_value):
        return ""
    alpha = 1 - result.confidence_level
    boot_excludes = not boot[0] <= 1 <= boot[1]
    rejects = result.p_value < alpha
    if boot_excludes == rejects:
        return ""
    test = _TITLES[result.test]
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


def find_level(
    by_level: dict[str, GroupMoments], level: str, *, option: str, group: str
) -> GroupMoments:
    """Match a level as typed; numbers also match in another spelling (``2.0`` for ``2``)."""
    if level in by_level:
        return by_level[level]
    try:
        number = float(level)
    except ValueError:
        number = None
    if number is not None and format_level(number) in by_level:
        return by_level[format_level(number)]
    raise AnalysisError(
        f"{option} {level!r} is not a level of {group} in the selected trials; "
        f"levels present: {', '.join(by_level)}"
    )


def scaled_pair(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
) -> tuple[GroupMoments, GroupMoments, float]:
    """``(ga, gb, 1.0)``, or for huge values (:func:`moment_scale`) their moments of
    ``metric / scale`` and the scale: statistics of scale (sd, differences, intervals) are then
    multiplied back by it, so values up to 1e308 give finite t, p and d."""
    scale = moment_scale(con, sel, metric=metric)
    if scale == 1.0:
        return ga, gb, scale
    by_level = {g.level: g for g in group_moments(con, sel, metric=metric, group=group,
                                                   scale=scale)}  # fmt: skip
    return by_level[ga.level], by_level[gb.level], scale


def two_levels(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    metric: str,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> tuple[Selection, GroupMoments, GroupMoments]:
    """The selection and the moments of ``metric`` at ``group=a`` and ``group=b`` (two
    different levels, each present in the selected trials)."""
    a, b = str(a), str(b)
    if a == b:
        raise AnalysisError(f"--a and --b are both {a!r}; give two different levels of {group}")
    sel, groups = load_groups(
        db, metric=metric, group=group, where=where, include_warmup=include_warmup
    )
    by_level = {g.level: g for g in groups}
    ga = find_level(by_level, a, option="--a", group=group)
    gb = find_level(by_level, b, option="--b", group=group)
    if ga is gb:
        raise AnalysisError(f"--a {a!r} and --b {b!r} are the same level of {group}")
    return sel, ga, gb


def _check_options(
    test: str, student: bool, n_boot: int, seed: int, confidence_level: float
) -> str:
    """The test to run (``student=True`` is ``test="student"``); bad options are one-line
    errors."""
    name = str(test).strip().lower()
    if name not in TESTS:
        raise AnalysisError(f"--test {test!r} is not a test; use one of {', '.join(TESTS)}")
    if student and name == "mwu":
        raise AnalysisError(
            "--student asks for Student's t-test but --test is mwu: they contradict each "
            "other; give only one of them"
        )
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 0:
        raise AnalysisError(
            f"--bootstrap {n_boot!r} is not a number of resamples; give 0 (no interval) or more"
        )
    if 0 < n_boot < MIN_BOOT or n_boot > MAX_BOOT:
        raise AnalysisError(
            f"--bootstrap {n_boot} is outside {MIN_BOOT}..{MAX_BOOT:,} resamples; use 2000 (the "
            "default), or 0 for no interval"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise AnalysisError(f"--seed {seed!r} is not a seed; give a whole number >= 0")
    if not isinstance(confidence_level, numbers.Real) or not 0 < confidence_level < 1:
        raise AnalysisError(
            f"--confidence {confidence_level!r} is not between 0 and 1; give e.g. 0.95"
        )
    return "student" if student else name


def ttest(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    student: bool = False,
    include_warmup: bool = False,
    test: str = "welch",
    n_boot: int = 2000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> TtestResult:
    """Compare ``metric`` between ``group=a`` and ``group=b``.

    ``test``: ``welch`` (default), ``student`` or ``mwu`` (Mann-Whitney U); ``student=True`` is
    the older spelling of ``test="student"`` (an error with ``test="mwu"``). Every test also
    reports Cohen's d, Hedges' g, the medians and ``mean_a / mean_b`` with a percentile
    bootstrap interval from ``n_boot`` resamples drawn with ``seed`` (``n_boot=0``: no
    interval). ``confidence_level`` applies to the t interval of ``mean_diff`` and to the
    ratio's interval. See :class:`TtestResult` for every field.
    """
    name = _check_options(test, student, n_boot, seed, confidence_level)
    n_boot, seed, confidence_level = int(n_boot), int(seed), float(confidence_level)
    with connect(db) as con:
        sel, ga, gb = two_levels(
            con, group=group, a=a, b=b, metric=metric, where=where, include_warmup=include_warmup
        )
        keys = _level_keys(con, sel, (ga.level, gb.level), metric=metric, group=group)
        median_a = _level_median(con, sel, ga, keys[0], metric=metric, group=group)
        median_b = _level_median(con, sel, gb, keys[1], metric=metric, group=group)
        sa, sb, scale = scaled_pair(con, sel, ga, gb, metric=metric, group=group)
        if name == "mwu":
            result = _mwu_result(
                con,
                sel,
                keys,
                sa,
                sb,
                metric=metric,
                group=group,
                confidence_level=confidence_level,
            )
        else:
            result = ttest_from_moments(
                sa,
                sb,
                metric=metric,
                group=group,
                equal_var=name == "student",
                where=sel.where_text,
                confidence_level=confidence_level,
            )
        if scale != 1.0:
            result = replace(
                result,
                mean_a=ga.mean,
                mean_b=gb.mean,
                sd_a=result.sd_a * scale,
                sd_b=result.sd_b * scale,
                mean_diff=result.mean_diff * scale,
                ci_low=result.ci_low * scale,
                ci_high=result.ci_high * scale,
            )
        ratio, ci_low, ci_high, ci_method = math.nan, math.nan, math.nan, "none"
        if gb.mean != 0:
            ratio = float(ratio_of_means(result.mean_diff, ga.mean, gb.mean))
        elif n_boot:
            raise AnalysisError(
                f"the mean of {metric} at {group}={gb.level} is 0, so the ratio "
                f"mean_a / mean_b is undefined; swap --a and --b, or pass n_boot=0 "
                "(--bootstrap 0) to skip the ratio"
            )
        if n_boot:
            ci_low, ci_high, ci_method = _ratio_interval(
                con,
                sel,
                keys,
                ga,
                gb,
                metric=metric,
                group=group,
                n_boot=n_boot,
                seed=seed,
                confidence_level=confidence_level,
            )
    notes = list(result.notes)
    fieller = (math.nan, math.nan)
    if gb.mean != 0:
        fieller = _fieller(sa, sb, equal_var=name == "student", confidence_level=confidence_level)
        disagree = _disagreement(result, (ci_low, ci_high))
        if disagree:
            notes.append(disagree)
    note = small_sample_note([(ga.level, ga.n), (gb.level, gb.n)], what=f"{group}=")
    if note:
        notes.append(note)
    return replace(
        result,
        notes=tuple(notes),
        ratio_fieller_low=fieller[0],
        ratio_fieller_high=fieller[1],
        median_a=median_a,
        median_b=median_b,
        ratio=ratio,
        ratio_ci_low=ci_low,
        ratio_ci_high=ci_high,
        ratio_ci_method=ci_method,
        n_boot=n_boot,
        seed=seed,
    )
