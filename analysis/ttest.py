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
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from analysis.data import Database, Filter, GroupMoments, Selection, connect
from analysis.errors import AnalysisError
from analysis.intervals import t_interval, t_sf
from analysis.mwu import MWU_EXACT_MAX_U, mwu_asymptotic, mwu_result, mwu_uses_exact
from analysis.options import (
    CONFIDENCE,
    DEFAULT_SEED,
    N_BOOT,
    check_bootstrap,
    check_confidence,
    check_seed,
)
from analysis.pair_levels import find_level, level_keys, level_median, scaled_pair, two_levels
from analysis.ratio import (
    BOOT_CHUNK,
    BOOT_MAX_DRAWS,
    disagreement,
    fieller_of,
    ratio_interval,
    ratio_of_means,
)
from analysis.smallsample import small_sample_note
from analysis.ttest_result import TITLES, TtestResult

if TYPE_CHECKING:
    import duckdb

from analysis.twosample import (
    check_sizes,
    describe,
    effect_sizes,
    fieller_interval,
    hedges_correction,
    mean_difference,
    pooled_var,
    standard_error,
    welch_df,
)

__all__ = [
    "BOOT_CHUNK",
    "BOOT_MAX_DRAWS",
    "MWU_EXACT_MAX_U",
    "TESTS",
    "TtestResult",
    "effect_sizes",
    "fieller_interval",
    "find_level",
    "hedges_correction",
    "mean_difference",
    "mwu_asymptotic",
    "pooled_var",
    "ratio_of_means",
    "scaled_pair",
    "ttest",
    "ttest_from_moments",
    "two_levels",
    "welch_df",
]

#: The tests ``ttest(test=...)`` runs.
TESTS = ("welch", "student", "mwu")
_TITLES = TITLES  # the name held.py and older callers import
_mwu_uses_exact = mwu_uses_exact


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
    check_sizes(ga, gb, metric=metric, group=group, what="a t-test")
    if ga.var == 0 and gb.var == 0:
        raise AnalysisError(
            f"{metric} has zero variance in both {group}={ga.level} and {group}={gb.level} "
            "(all values equal), so the t statistic is undefined; check the data, pick "
            "another --metric, or use the Mann-Whitney test"
        )
    mean_diff = mean_difference(ga, gb)
    se = standard_error(ga.var, ga.n, gb.var, gb.n, equal_var=equal_var)
    df = float(ga.n + gb.n - 2) if equal_var else welch_df(ga.var, ga.n, gb.var, gb.n)
    statistic = mean_diff / se
    p_value = 2 * t_sf(abs(statistic), df)
    ci_low, ci_high = t_interval(mean_diff, se, df, confidence_level)
    cohens_d, hedges_g = effect_sizes(ga, gb)
    return TtestResult(
        **describe(ga, gb, metric=metric, group=group),
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


def check_options(
    test: str, student: bool, n_boot: int, seed: int, confidence_level: float
) -> tuple[str, int, int, float]:
    """The test to run (``student=True`` is ``test="student"``) and the checked options; bad
    options are one-line errors (bounds from :mod:`analysis.options`)."""
    name = str(test).strip().lower()
    if name not in TESTS:
        raise AnalysisError(f"--test {test!r} is not a test; use one of {', '.join(TESTS)}")
    if student and name == "mwu":
        raise AnalysisError(
            "--student asks for Student's t-test but --test is mwu: they contradict each "
            "other; give only one of them"
        )
    n_boot, seed = check_bootstrap(n_boot), check_seed(seed)
    confidence_level = check_confidence(confidence_level)
    return ("student" if student else name), n_boot, seed, confidence_level


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
    n_boot: int = N_BOOT,
    seed: int = DEFAULT_SEED,
    confidence_level: float = CONFIDENCE,
) -> TtestResult:
    """Compare ``metric`` between ``group=a`` and ``group=b``.

    ``test``: ``welch`` (default), ``student`` or ``mwu`` (Mann-Whitney U); ``student=True`` is
    the older spelling of ``test="student"`` (an error with ``test="mwu"``). Every test also
    reports Cohen's d, Hedges' g, the medians and ``mean_a / mean_b`` with a percentile
    bootstrap interval from ``n_boot`` resamples drawn with ``seed`` (``n_boot=0``: no
    interval). ``confidence_level`` applies to the t interval of ``mean_diff`` and to the
    ratio's interval. See :class:`TtestResult` for every field.
    """
    name, n_boot, seed, confidence_level = check_options(
        test, student, n_boot, seed, confidence_level
    )
    with connect(db) as con:
        sel, ga, gb = two_levels(
            con, group=group, a=a, b=b, metric=metric, where=where, include_warmup=include_warmup
        )
        keys = level_keys(con, sel, (ga.level, gb.level), metric=metric, group=group)
        median_a = level_median(con, sel, ga, keys[0], metric=metric, group=group)
        median_b = level_median(con, sel, gb, keys[1], metric=metric, group=group)
        sa, sb, scale = scaled_pair(con, sel, ga, gb, metric=metric, group=group)
        return ttest_of_pair(con, sel, keys, (ga, gb), (sa, sb), scale, (median_a, median_b),
                             metric=metric, group=group, test=name, n_boot=n_boot, seed=seed,
                             confidence_level=confidence_level)  # fmt: skip


def ttest_of_pair(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    keys: tuple[Any, ...],
    pair: tuple[GroupMoments, GroupMoments],
    scaled: tuple[GroupMoments, GroupMoments],
    scale: float,
    medians: tuple[float, float],
    *,
    metric: str,
    group: str,
    test: str,
    n_boot: int,
    seed: int,
    confidence_level: float,
) -> TtestResult:
    """:func:`ttest` from the two levels' stored keys, moments (unscaled and of
    ``metric / scale``) and medians; ``sel`` is read again only for Mann-Whitney's ranks and a
    small bootstrap. Options as checked by :func:`ttest`."""
    name = test
    ga, gb = pair
    sa, sb = scaled
    median_a, median_b = medians
    if name == "mwu":
        result = mwu_result(
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
        ci_low, ci_high, ci_method = ratio_interval(
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
        fieller = fieller_of(sa, sb, equal_var=name == "student", confidence_level=confidence_level)
        disagree = disagreement(result, (ci_low, ci_high))
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
