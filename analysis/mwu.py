"""The Mann-Whitney U test of two levels, from their mid-rank sums (:mod:`analysis.ranks`:
the two levels' values in one DuckDB scan, ranked by numpy): U, z, p (exact for small samples
without ties, as scipy's ``method="auto"``; else the normal approximation with tie and
continuity corrections), the rank-biserial correlation and the common-language effect size."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from analysis.data import GroupMoments, Selection
from analysis.pair_levels import level_values
from analysis.ttest_result import TtestResult
from analysis.twosample import check_sizes, describe, effect_sizes, mean_difference

if TYPE_CHECKING:
    import duckdb

#: scipy's ``mannwhitneyu(method="auto")`` uses the exact U distribution when a level has at
#: most 8 trials and no value ties; its cost grows with ``min(U, n_a n_b - U) ** 2``, so beyond
#: this we use the normal approximation (``method = "asymptotic"``) even there.
MWU_EXACT_MAX_U = 10_000
_MWU_EXACT_MAX_N = 8


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


def mwu_uses_exact(n_a: int, n_b: int, u_a: float, tie_term: float) -> bool:
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
    """U, p, z, rank-biserial and CLES of level a against level b, from their rank sums."""
    from analysis.query import HELD_VALUES
    from analysis.ranks import rank_sums

    ranks = rank_sums(con, sel, metric=metric, group=group, levels=[ga.level, gb.level],
                      held=HELD_VALUES, keys=keys, expected=ga.n + gb.n)  # fmt: skip
    n_a, rank_sum_a = ranks.of(ga.level)
    n_b, _ = ranks.of(gb.level)
    u_a = rank_sum_a - n_a * (n_a + 1) / 2.0
    z, p_value = mwu_asymptotic(u_a, n_a, n_b, ranks.tie_term)
    method = "asymptotic"
    if mwu_uses_exact(n_a, n_b, u_a, ranks.tie_term):
        from scipy import stats

        x = level_values(con, sel, keys[0], metric=metric, group=group)
        y = level_values(con, sel, keys[1], metric=metric, group=group)
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


def mwu_result(
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
    check_sizes(ga, gb, metric=metric, group=group, what="the comparison")
    cohens_d, hedges_g = effect_sizes(ga, gb)
    return TtestResult(
        **describe(ga, gb, metric=metric, group=group),
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
