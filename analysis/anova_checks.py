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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    GroupMoments,
    Selection,
    execute,
    p_text,
    quote,
)
from analysis.errors import AnalysisError
from analysis.intervals import chi2_sf, f_sf  # noqa: F401  (f_sf re-exported)
from analysis.options import ALPHA, DEFAULT_SEED
from analysis.ranks import RankSums
from analysis.smallsample import small_sample_note

if TYPE_CHECKING:
    import duckdb
    import numpy as np

    from analysis.query import LevelStats

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
#: ``checks="auto"`` runs Kruskal–Wallis and Shapiro–Wilk (a rank or a sample of every value:
#: a sort or a hash per trial) up to this many trials; above it, Kruskal–Wallis only when asked
#: for or recommended (heavy tails), Shapiro–Wilk only with ``checks="all"``.
CHECKS_AUTO_MAX_N = 100_000
CHECKS_CHOICES = ("auto", "all")
#: How the checks left out are named.
CHECK_NAMES = {"kruskal": "Kruskal-Wallis", "shapiro": "Shapiro-Wilk"}

NAN = math.nan


def metric_scale(con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str) -> float:
    """1, or when the largest magnitude of ``metric`` in the selection is beyond ``2**400``
    (squares near overflow) or below ``2**-400`` (squares near underflow), the power of two at
    or below it: dividing by it is exact, and sums of squares of the quotients are finite and
    keep every digit. Statistics of scale (means, sds, differences) are multiplied back."""
    from analysis.query import power_of_two_scale

    x = f"CAST({quote(metric)} AS DOUBLE)"
    where_sql = sel.where_and(f"{quote(metric)} IS NOT NULL")
    (big,) = execute(con, f"SELECT max(abs({x})) FROM {VIEW}{where_sql}", sel.params)[0]
    return power_of_two_scale(big)


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
    return statistic, df_num, df_den, f_sf(statistic, df_num, df_den)


def kruskal_from_ranks(ranks: RankSums) -> tuple[float, float, float]:
    """Kruskal–Wallis ``(H, df, p)``, tie-corrected; NaN when every value is tied.

    ``H = 12 / (N (N + 1)) * sum n_i (mean_rank_i - (N + 1) / 2)^2``, divided by
    ``1 - sum(t^3 - t) / (N^3 - N)``: the centred form, free of the cancellation of
    ``12/(N(N+1)) sum R_i^2/n_i - 3(N+1)`` at large N.
    """

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
    return h, float(k - 1), chi2_sf(h, k - 1)


def levene_from_moments(abs_dev: Sequence[GroupMoments]) -> tuple[float, float, float, float]:
    """One-way F on the per-level moments of ``|x - median|`` (Brown–Forsythe); NaN when the
    deviations do not vary within any level."""

    ss_between, ss_within = sums_of_squares(abs_dev)
    if ss_within == 0:
        return NAN, NAN, NAN, NAN
    df_num = float(len(abs_dev) - 1)
    df_den = float(sum(g.n for g in abs_dev) - len(abs_dev))
    statistic = (ss_between / df_num) / (ss_within / df_den)
    return statistic, df_num, df_den, f_sf(statistic, df_num, df_den)


def shapiro_wilk(residuals: np.ndarray) -> tuple[float, float]:
    """``(W, p)`` of ``scipy.stats.shapiro``; NaN with fewer than 3 residuals or none varying.

    W is the same for residuals times any positive number, so they are first scaled by a power
    of two (exact) to a largest magnitude in [0.5, 1): scipy's ``swilk`` refuses a range below
    1e-19 ("range zero", only a warning, with W = p = 1), which tiny residuals of varying data
    would otherwise hit (a level's spread of 1e-8 beside another's values of 1e12)."""
    import numpy as np
    from scipy import stats

    if len(residuals) < 3 or float(residuals.max()) == float(residuals.min()):
        return NAN, NAN
    largest = max(abs(float(residuals.max())), abs(float(residuals.min())))
    res = stats.shapiro(np.ldexp(residuals, -math.frexp(largest)[1]))
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
def residual_sample(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    levels: Sequence[LevelStats],
    *,
    metric: str,
    group: str,
    n_total: int,
    seed: int = DEFAULT_SEED,
    limit: int = SHAPIRO_MAX_N,
) -> np.ndarray:
    """Residuals ``x - level mean`` (``x = metric / scale`` minus its level's shift, minus the
    level's mean of that, from ``levels``: :func:`analysis.query.level_stats`): all of them when
    ``n_total <= limit``, else the ``limit`` trials with the smallest ``md5(seed:trial_id)`` — a
    simple random sample that depends only on the seed and the trial ids (not on thread
    scheduling, unlike ``USING SAMPLE ... REPEATABLE``). No window function: the shifts and
    means are joined from a table of one row per level."""
    import numpy as np

    m, g = quote(metric), quote(group)
    key = "trial_id" if "trial_id" in sel.columns else None
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    values = ", ".join(
        f"(?, CAST('{lv.scale!r}' AS DOUBLE), CAST('{lv.shift!r}' AS DOUBLE), "
        f"CAST('{lv.mean_dev!r}' AS DOUBLE))"
        for lv in levels
    )
    base = (
        f"SELECT {'trial_id AS k' if key else 'g'}, (x / sc - s) - md AS r FROM "
        f"(SELECT {'trial_id, ' if key else ''}{g} AS g, CAST({m} AS DOUBLE) AS x "
        f"FROM {VIEW}{where_sql}) JOIN (SELECT * FROM (VALUES {values}) AS t(g, sc, s, md)) "
        "USING (g)"
    )
    params = [*sel.params, *(lv.key[-1] for lv in levels)]
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


@dataclass(frozen=True)
class CheckNotes:
    """The notes of a one-way ANOVA and why Brown–Forsythe could not run (empty: it ran)."""

    notes: tuple[str, ...]
    levene_reason: str


def check_notes(
    result: Any,
    groups: Sequence[GroupMoments],
    *,
    group: str,
    levene: tuple[float, float, float, float],
    shapiro_w: float,
    residuals: np.ndarray | None,
    kruskal_h: float,
    not_run: Sequence[str] = (),
) -> CheckNotes:
    """What could not run and why, and which checks were left out (``not_run``)."""
    notes = []
    levene_reason = ""
    if math.isnan(levene[0]):
        levene_reason = (
            "equal variances not checked: Brown-Forsythe could not run, as the absolute "
            "deviations from the level medians do not vary within any level (as with 2 trials "
            "per level)"
        )
        notes.append(levene_reason)
    if residuals is not None and math.isnan(shapiro_w):
        notes.append(
            f"normality not checked: Shapiro-Wilk could not run, as there are only "
            f"{len(residuals)} residuals"
            if len(residuals) < 3
            else "normality not checked: Shapiro-Wilk could not run, as every residual is equal"
        )
    if math.isnan(result.welch_statistic):
        zero = [g.level for g in groups if g.var == 0]
        noun = "level" if len(zero) == 1 else "levels"
        notes.append(
            f"Welch's ANOVA is undefined: {group} {noun} {', '.join(zero)} with zero variance"
        )
    if "kruskal" not in not_run and math.isnan(kruskal_h):
        notes.append("Kruskal-Wallis is undefined: every value is tied")
    few = small_sample_note([(g.level, g.n) for g in groups], what=f"{group}=")
    if few:
        notes.insert(0, few)
    if not_run:
        names = " and ".join(CHECK_NAMES[c] for c in not_run)
        notes.append(
            f"not run: {names} (they rank or sample every one of the {result.n} trials, above "
            f"{CHECKS_AUTO_MAX_N}); ask for them with --checks all"
        )
    return CheckNotes(tuple(notes), levene_reason)
