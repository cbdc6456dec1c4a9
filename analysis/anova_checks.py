"""The parts of a one-way ANOVA beside the F test: Kruskal–Wallis from rank sums, Brown–Forsythe
and Shapiro–Wilk (the assumption checks), Tukey's far-out values per level, the recommendation
rule (see :mod:`analysis.anova`) and the DuckDB queries that feed them.

Every query works on values divided by ``scale`` (a power of two, exact: see
:func:`metric_scale`) and taken relative to their level's minimum, so that neither 1e300 (whose
squares overflow) nor 1e-300 (whose squares underflow) nor ``1e9 + noise`` loses its spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from analysis.data import (
    VIEW,
    GroupMoments,
    Selection,
    execute,
    format_level,
    p_text,
    quote,
)
from analysis.errors import AnalysisError
from analysis.options import ALPHA, DEFAULT_SEED
from analysis.ranks import RankSums

if TYPE_CHECKING:
    import duckdb
    import numpy as np

#: Shapiro–Wilk uses every residual up to this many trials, a seeded sample of this size above.
SHAPIRO_MAX_N = 5000
#: A level is checked for heavy tails (values beyond Tukey's far-out fences) from this many
#: trials, and counts as clearly heavy-tailed with at least ``HEAVY_MIN_COUNT`` such values (one
#: far-out value turns up in 2-5% of normal samples of 10-20, two in under 1%).
TAIL_MIN_N = 10
HEAVY_MIN_COUNT = 2
#: Tukey's far-out fences: q1 - 3 IQR and q3 + 3 IQR.
FAR_OUT_K = 3.0
#: Below this many trials in the smallest level the checks have little power: said.
CHECK_MIN_N = 10
TEST_CHOICES = ("auto", "anova", "welch", "kruskal")
#: Magnitudes outside ``[2**-SCALE_EXP, 2**SCALE_EXP]`` are scaled before any square.
SCALE_EXP = 400

NAN = math.nan


def metric_scale(con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str) -> float:
    """1, or when the largest magnitude of ``metric`` in the selection is beyond ``2**400``
    (squares near overflow) or below ``2**-400`` (squares near underflow), the power of two at
    or below it: dividing by it is exact, and sums of squares of the quotients are finite and
    keep every digit. Statistics of scale (means, sds, differences) are multiplied back."""
    x = f"CAST({quote(metric)} AS DOUBLE)"
    where_sql = sel.where_and(f"{quote(metric)} IS NOT NULL")
    (big,) = execute(con, f"SELECT max(abs({x})) FROM {VIEW}{where_sql}", sel.params)[0]
    if big is None or not math.isfinite(big) or big == 0:
        return 1.0
    if math.ldexp(1.0, -SCALE_EXP) <= big <= math.ldexp(1.0, SCALE_EXP):
        return 1.0
    return math.ldexp(1.0, math.frexp(big)[1] - 1)


def relative_means(groups: Sequence[GroupMoments]) -> list[float]:
    """Level means relative to the first level's shift (the shifts subtracted apart)."""
    ref = groups[0].shift
    return [(g.shift - ref) + g.mean_dev for g in groups]


def sums_of_squares(groups: Sequence[GroupMoments]) -> tuple[float, float]:
    """``(SS_between, SS_within)`` of the one-way layout."""
    rel = relative_means(groups)
    n_total = sum(g.n for g in groups)
    grand = math.fsum(g.n * r for g, r in zip(groups, rel, strict=True)) / n_total
    ss_between = math.fsum(g.n * (r - grand) ** 2 for g, r in zip(groups, rel, strict=True))
    ss_within = math.fsum((g.n - 1) * g.var for g in groups)
    return ss_between, ss_within


def welch_from_moments(groups: Sequence[GroupMoments]) -> tuple[float, float, float, float]:
    """Welch's ANOVA ``(F, df_num, df_den, p)``; all NaN when a level has zero variance."""
    from scipy import stats

    if any(g.var == 0 for g in groups):
        return NAN, NAN, NAN, NAN
    k = len(groups)
    rel = relative_means(groups)
    w = [g.n / g.var for g in groups]
    sw = math.fsum(w)
    mean_w = math.fsum(wi * r for wi, r in zip(w, rel, strict=True)) / sw
    a = math.fsum(wi * (r - mean_w) ** 2 for wi, r in zip(w, rel, strict=True)) / (k - 1)
    tmp = math.fsum((1 - wi / sw) ** 2 / (g.n - 1) for wi, g in zip(w, groups, strict=True))
    statistic = a / (1 + 2 * (k - 2) / (k**2 - 1) * tmp)
    df_num, df_den = float(k - 1), (k**2 - 1) / (3 * tmp)
    return statistic, df_num, df_den, float(stats.f.sf(statistic, df_num, df_den))


def kruskal_from_ranks(ranks: RankSums) -> tuple[float, float, float]:
    """Kruskal–Wallis ``(H, df, p)``, tie-corrected; NaN when every value is tied.

    ``H = 12 / (N (N + 1)) * sum n_i (mean_rank_i - (N + 1) / 2)^2``, divided by
    ``1 - sum(t^3 - t) / (N^3 - N)``: the centred form, free of the cancellation of
    ``12/(N(N+1)) sum R_i^2/n_i - 3(N+1)`` at large N.
    """
    from scipy import stats

    n_total = ranks.n_total
    k = len(ranks.n)
    mid = (n_total + 1) / 2
    h = (
        12
        / (n_total * (n_total + 1.0))
        * math.fsum(n * (r / n - mid) ** 2 for n, r in zip(ranks.n, ranks.rank_sum, strict=True))
    )
    correction = 1 - ranks.tie_term / (float(n_total) ** 3 - n_total)
    if correction <= 0:
        return NAN, float(k - 1), NAN
    h /= correction
    return h, float(k - 1), float(stats.chi2.sf(h, k - 1))


def levene_from_moments(abs_dev: Sequence[GroupMoments]) -> tuple[float, float, float, float]:
    """One-way F on the per-level moments of ``|x - median|`` (Brown–Forsythe); NaN when the
    deviations do not vary within any level."""
    from scipy import stats

    ss_between, ss_within = sums_of_squares(abs_dev)
    if ss_within == 0:
        return NAN, NAN, NAN, NAN
    df_num = float(len(abs_dev) - 1)
    df_den = float(sum(g.n for g in abs_dev) - len(abs_dev))
    statistic = (ss_between / df_num) / (ss_within / df_den)
    return statistic, df_num, df_den, float(stats.f.sf(statistic, df_num, df_den))


def shapiro_wilk(residuals: np.ndarray) -> tuple[float, float]:
    """``(W, p)`` of ``scipy.stats.shapiro``; NaN with fewer than 3 residuals or none varying."""
    from scipy import stats

    if len(residuals) < 3 or float(residuals.max()) == float(residuals.min()):
        return NAN, NAN
    res = stats.shapiro(residuals)
    return float(res.statistic), float(res.pvalue)


def far_out_count(values: np.ndarray) -> int:
    """Values beyond Tukey's far-out fences ``q1 - 3 IQR``, ``q3 + 3 IQR`` (quartiles by linear
    interpolation, as NumPy's default and DuckDB's ``quantile_cont``)."""
    import numpy as np

    q1, q3 = np.quantile(values, [0.25, 0.75])
    iqr = q3 - q1
    return int(np.count_nonzero((values < q1 - FAR_OUT_K * iqr) | (values > q3 + FAR_OUT_K * iqr)))


def recommend(
    *,
    welch_p: float,
    kruskal_p: float,
    levene_p: float,
    far_out: Sequence[int | None],
    levels: Sequence[str],
    sizes: Sequence[int],
    alpha: float = ALPHA,
    test: str = "auto",
    levene_reason: str = "",
) -> tuple[str, str]:
    """``(recommended, one sentence why)`` by the rule in the module docstring."""
    if test not in TEST_CHOICES:
        raise AnalysisError(f"--test {test!r}: give one of {', '.join(TEST_CHOICES)}")
    names = {"anova": "The classic F test", "welch": "Welch's ANOVA", "kruskal": "Kruskal-Wallis"}
    min_n = min(sizes)
    caveats = []
    if min_n < CHECK_MIN_N:
        caveats.append(
            f"with {min_n} trials in the smallest level the checks have little power, so a "
            "violation may go undetected"
        )
    unchecked = [lv for lv, k in zip(levels, far_out, strict=True) if k is None]
    if unchecked:
        caveats.append(
            f"heavy tails not checked in {', '.join(unchecked)} (fewer than {TAIL_MIN_N} trials)"
        )
    if levene_reason:
        caveats.append(levene_reason)
    elif not math.isnan(levene_p):
        differ = "differ" if levene_p < alpha else "do not differ detectably"
        caveats.append(f"the variances {differ} (Brown-Forsythe {p_text(levene_p)})")
    tail = "".join(f"; {c}" for c in caveats)
    if test != "auto":
        return test, f"{names[test]} is reported as asked{tail}."
    heavy = [
        f"{lv} has {k} of {n} values beyond 3 IQR of its quartiles"
        for lv, k, n in zip(levels, far_out, sizes, strict=True)
        if k is not None and k >= HEAVY_MIN_COUNT
    ]
    if heavy and not math.isnan(kruskal_p):
        return "kruskal", (
            f"Kruskal-Wallis is recommended: {'; '.join(heavy)} (clearly heavy-tailed), and "
            f"means are at the mercy of such values while ranks are not{tail}."
        )
    if not math.isnan(welch_p):
        return "welch", (
            "Welch's ANOVA is recommended: it does not assume equal variances and costs "
            f"almost nothing when they are equal{tail}."
        )
    if not math.isnan(kruskal_p):
        return "kruskal", (
            "Kruskal-Wallis is recommended: Welch's ANOVA is undefined with a zero-variance "
            f"level{tail}."
        )
    return "anova", f"The classic F test is the only one defined here{tail}."


# -- DuckDB queries ---------------------------------------------------------------------------
def _shifted(sel: Selection, *, metric: str, group: str, scale: float, extra: str = "") -> str:
    """``SELECT g, [extra,] d`` with ``d = x - min(x) over the level``, ``x = metric / scale``
    (``scale`` a power of two written as a literal: exact, and no parameter to place)."""
    m, g = quote(metric), quote(group)
    x = f"(CAST({m} AS DOUBLE) / CAST({float(scale)!r} AS DOUBLE))"
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    return (
        f"SELECT {g} AS g, {extra}{x} - min({x}) OVER (PARTITION BY {g}) AS d "
        f"FROM {VIEW}{where_sql}"
    )


def abs_deviation_moments(
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, group: str, scale: float = 1.0
) -> list[GroupMoments]:
    """Per level (sorted by value): count, mean and sample variance of ``|x - level median|``,
    computed in DuckDB on the shifted values."""
    inner = _shifted(sel, metric=metric, group=group, scale=scale)
    sql = (
        "SELECT g, count(*), avg(z), var_samp(z) FROM ("
        f"SELECT g, abs(d - median(d) OVER (PARTITION BY g)) AS z FROM ({inner})"
        ") GROUP BY g ORDER BY g"
    )
    return [
        GroupMoments(
            level=format_level(level),
            n=int(n),
            shift=0.0,
            mean_dev=float(mean),
            var=NAN if var is None else float(var),
        )
        for level, n, mean, var in execute(con, sql, sel.params)
    ]


def residual_sample(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    group: str,
    n_total: int,
    seed: int = DEFAULT_SEED,
    limit: int = SHAPIRO_MAX_N,
    scale: float = 1.0,
) -> np.ndarray:
    """Residuals ``x - level mean`` (shifted values minus their level mean, in DuckDB): all of
    them when ``n_total <= limit``, else the ``limit`` trials with the smallest
    ``md5(seed:trial_id)`` — a simple random sample that depends only on the seed and the trial
    ids (not on thread scheduling, unlike ``USING SAMPLE ... REPEATABLE``)."""
    import numpy as np

    key = "trial_id" if "trial_id" in sel.columns else None
    extra = "trial_id AS k, " if key else ""
    inner = _shifted(sel, metric=metric, group=group, scale=scale, extra=extra)
    base = f"SELECT {'k, ' if key else 'g, '}d - avg(d) OVER (PARTITION BY g) AS r FROM ({inner})"
    params = list(sel.params)
    if n_total <= limit:
        sql = f"SELECT r FROM ({base})"
    else:
        ident = "CAST(k AS VARCHAR)" if key else "CAST(g AS VARCHAR) || ':' || CAST(r AS VARCHAR)"
        sql = (
            f"SELECT r FROM ({base}) "
            f"ORDER BY md5_number(CAST(? AS VARCHAR) || ':' || {ident}), r LIMIT ?"
        )
        params += [int(seed), int(limit)]
    rows = execute(con, sql, params)
    return np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))


def far_out_counts(
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, group: str, scale: float = 1.0
) -> list[int | None]:
    """Per level (sorted by value): :func:`far_out_count` computed in DuckDB (on the shifted
    values), None for levels of fewer than :data:`TAIL_MIN_N` trials."""
    inner = _shifted(sel, metric=metric, group=group, scale=scale)
    k = FAR_OUT_K
    sql = (
        "SELECT g, count(*), count(*) FILTER (WHERE d < q1 - ? * (q3 - q1) OR d > q3 + ? * "
        "(q3 - q1)) FROM (SELECT g, d, quantile_cont(d, 0.25) OVER (PARTITION BY g) AS q1, "
        f"quantile_cont(d, 0.75) OVER (PARTITION BY g) AS q3 FROM ({inner})) "
        "GROUP BY g ORDER BY g"
    )
    rows = execute(con, sql, [k, k, *sel.params])
    return [None if int(n) < TAIL_MIN_N else int(bad) for _, n, bad in rows]
