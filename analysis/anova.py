"""One-way ANOVA of a metric across the levels of one factor, from per-group sufficient
statistics computed in DuckDB, with its assumption checks, the two usual alternatives and
optional post-hoc comparisons.

Everything is computed in DuckDB; Python receives one row per level (or, for Shapiro–Wilk, at
most :data:`SHAPIRO_MAX_N` residuals):

- the classic F test, eta² and omega², from the per-level moments (:func:`group_moments`);
- Welch's ANOVA (unequal variances) from the same moments;
- Kruskal–Wallis H, tie-corrected, from the per-level mid-rank sums (:func:`rank_sums`);
- Levene's test in the Brown–Forsythe variant (deviations from the level *median*): the
  per-level moments of ``|x - median|`` computed in DuckDB, then the one-way F on them;
- Shapiro–Wilk on the residuals ``x - level mean`` (every residual up to 5000 selected trials,
  above that a reproducible sample of 5000 chosen by ``md5(seed:trial_id)``: ``shapiro_n``).

Each value is taken relative to its level's minimum (a data value) before any subtraction, so
``1e12 + noise`` keeps its noise; magnitudes beyond ``2**400`` or below ``2**-400`` are first
divided by a power of two (:func:`analysis.anova_checks.metric_scale`, exact), so 1e300 and
1e-300 give the F, p and checks of the same data at unit scale, and means and sds multiplied
back. The checks and their queries live in :mod:`analysis.anova_checks`, the text, LaTeX and
tables in :mod:`analysis.anova_text`.

Recommendation rule (:func:`recommend`), at ``alpha`` (0.05 by default):

1. a test asked for (``test="anova"``, ``"welch"`` or ``"kruskal"``) -> that test;
2. some level is clearly heavy-tailed — it has :data:`HEAVY_MIN_COUNT` or more values beyond
   Tukey's far-out fences (3 IQR from its quartiles; checked per level, in levels of at least
   :data:`TAIL_MIN_N` trials) ->
   ``kruskal`` (means are at the mercy of such values; ranks are not);
3. otherwise -> ``welch`` (the default: it does not assume equal variances and loses almost
   nothing when they are equal, while the classic F test's type-I error goes far off when the
   smallest level has the largest spread); ``kruskal`` when Welch's ANOVA is undefined (a
   zero-variance level).

Brown–Forsythe and Shapiro–Wilk on the pooled residuals are reported, but decide nothing:
Shapiro–Wilk on pooled residuals rejects whenever the variances differ, and neither check has the
power to detect a violation with few trials per level (the recommendation says so below
:data:`CHECK_MIN_N`). A check that could not run is reported as "not checked", never as passed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from analysis import anova_text
from analysis.anova_checks import (  # noqa: F401  (re-exported: analysis.anova's public names)
    CHECK_MIN_N,
    CHECKS_AUTO_MAX_N,
    CHECKS_CHOICES,
    FAR_OUT_K,
    HEAVY_MIN_COUNT,
    SHAPIRO_MAX_N,
    TAIL_MIN_N,
    TEST_CHOICES,
    check_notes,
    far_out_count,
    kruskal_from_ranks,
    levene_from_moments,
    metric_scale,
    recommend,
    relative_means,
    residual_sample,
    shapiro_wilk,
    sums_of_squares,
    welch_from_moments,
)
from analysis.anova_text import TEST_COLUMNS  # noqa: F401  (re-exported)
from analysis.data import (
    Database,
    Filter,
    GroupMoments,
    Selection,
    connect,
    finite_check,
    format_level,
    no_trials_error,
    select,
)
from analysis.errors import AnalysisError
from analysis.options import ALPHA, DEFAULT_SEED, check_alpha, check_seed
from analysis.posthoc import PosthocResult, check_method, posthoc_from_moments
from analysis.query import LevelStats, level_stats
from analysis.ranks import rank_sums

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from analysis.tables import Table

#: Kept for callers of the former rule (pooled residuals against 30 trials); unused.
SMALL_LEVEL_N = 30
RECOMMENDED = ("anova", "welch", "kruskal")

NAN = math.nan


@dataclass(frozen=True)
class GroupStats:
    """One level of the group factor: its trial count, mean and sample standard deviation."""

    level: str
    n: int
    mean: float
    sd: float


@dataclass(frozen=True)
class AnovaResult:
    """A one-way ANOVA: F = (SS_between / df_num) / (SS_within / df_den), with effect sizes,
    assumption checks, the alternatives (Welch, Kruskal–Wallis), a recommendation and optional
    post-hoc comparisons.

    ``eta_sq = SS_between / SS_total``; ``omega_sq = (SS_between - df_num MS_within) /
    (SS_total + MS_within)`` (less biased; may be slightly negative when F < 1). The
    ``levene_*`` fields are the Brown–Forsythe variant (centre: the level median). A check that
    could not run is NaN and explained in ``notes`` and ``recommendation``. ``shapiro_n`` is the
    number of residuals tested (a sample, drawn with ``seed``, when below ``n``).
    """

    metric: str
    group: str
    groups: tuple[GroupStats, ...]
    statistic: float
    p_value: float
    df_num: float
    df_den: float
    eta_sq: float
    n: int
    where: tuple[str, ...]
    omega_sq: float = NAN
    welch_statistic: float = NAN
    welch_df_num: float = NAN
    welch_df_den: float = NAN
    welch_p_value: float = NAN
    kruskal_statistic: float = NAN
    kruskal_df: float = NAN
    kruskal_p_value: float = NAN
    levene_statistic: float = NAN
    levene_df_num: float = NAN
    levene_df_den: float = NAN
    levene_p_value: float = NAN
    shapiro_statistic: float = NAN
    shapiro_p_value: float = NAN
    shapiro_n: int = 0
    seed: int = DEFAULT_SEED
    alpha: float = ALPHA
    recommended: str = "anova"
    recommendation: str = ""
    notes: tuple[str, ...] = ()
    posthoc: PosthocResult | None = None
    #: per level (in ``groups`` order): values beyond the far-out fences; None = not checked
    far_out: tuple[int | None, ...] = ()
    #: checks left out (``"kruskal"``, ``"shapiro"``): see ``checks`` of :func:`anova`
    not_run: tuple[str, ...] = ()

    @property
    def shapiro_sampled(self) -> bool:
        """True when Shapiro–Wilk ran on a sample of the residuals."""
        return 0 < self.shapiro_n < self.n

    def to_dict(self) -> dict:
        return anova_text.to_dict(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per level: ``level, n, mean, sd``."""
        return anova_text.level_frame(self)

    def table_frame(self) -> pd.DataFrame:
        """What ``--format csv`` prints: :meth:`to_frame`'s level rows, each also carrying the
        tests (``f``, ``f_df_num``, ``f_df_den``, ``f_p_value``, ``welch_f``, ``welch_df_num``,
        ``welch_df_den``, ``welch_p_value``, ``kruskal_h``, ``kruskal_df``, ``kruskal_p_value``)
        and the ``recommended`` test, so the file holds every statistic the text shows, and the
        ``notes`` joined with ``; ``."""
        return anova_text.table_frame(self)

    def tests_frame(self) -> pd.DataFrame:
        """One row per test (columns :data:`TEST_COLUMNS`): the F test, Welch, Kruskal–Wallis,
        Brown–Forsythe and Shapiro–Wilk (NaN where a test has no such degree of freedom)."""
        return anova_text.tests_frame(self)

    def tables(self) -> list[Table]:
        """``groups`` (main), ``tests``, ``recommendation`` and, with a post-hoc, ``pairs``:
        together every statistic of the text (see :func:`analysis.anova_text.tables`)."""
        return anova_text.tables(self)

    def to_latex(self) -> str:
        """The level table, the test table, the recommendation and the post-hoc table."""
        return anova_text.to_latex(self)

    def __str__(self) -> str:
        return anova_text.render(self)


# -- from the per-level moments ---------------------------------------------------------------
def check_levels(groups: Sequence[GroupMoments], *, group: str, metric: str) -> None:
    """At least two levels, each with at least two trials."""
    if len(groups) < 2:
        raise AnalysisError(
            f"--group {group} has only one level ({groups[0].level}) in the selected trials; "
            "pick a factor that varies, or loosen --where"
        )
    small = [g for g in groups if g.n < 2]
    if small:
        names = ", ".join(f"{g.level} (n={g.n})" for g in small)
        noun = "level" if len(small) == 1 else "levels"
        raise AnalysisError(
            f"--group {group}: {noun} {names} need at least 2 trials with {metric}; run more "
            f"trials, or exclude it with --where {group}!={small[0].level}"
        )


def anova_from_moments(
    groups: Sequence[GroupMoments], *, metric: str, group: str, where: tuple[str, ...] = ()
) -> AnovaResult:
    """F test, eta², omega² and Welch's ANOVA from per-group (n, shift, mean_dev, var); means
    compared relative to one shift. The checks that need DuckDB are left NaN (see :func:`anova`)."""
    from analysis.anova_checks import f_sf

    check_levels(groups, group=group, metric=metric)
    ss_between, ss_within = sums_of_squares(groups)
    if ss_within == 0:
        raise AnalysisError(
            f"every level of --group {group} has zero variance in {metric} (all values equal "
            "within each level), so the F statistic is undefined; check the data or pick "
            "another --metric"
        )
    n_total = sum(g.n for g in groups)
    df_num = float(len(groups) - 1)
    df_den = float(n_total - len(groups))
    ms_within = ss_within / df_den
    statistic = (ss_between / df_num) / ms_within
    p_value = f_sf(statistic, df_num, df_den)
    ss_total = ss_between + ss_within
    welch_f, welch_df1, welch_df2, welch_p = welch_from_moments(groups)
    return AnovaResult(
        metric=metric,
        group=group,
        groups=tuple(
            GroupStats(level=g.level, n=g.n, mean=g.mean, sd=math.sqrt(g.var)) for g in groups
        ),
        statistic=float(statistic),
        p_value=p_value,
        df_num=df_num,
        df_den=df_den,
        eta_sq=ss_between / ss_total,
        n=n_total,
        where=where,
        omega_sq=(ss_between - df_num * ms_within) / (ss_total + ms_within),
        welch_statistic=welch_f,
        welch_df_num=welch_df1,
        welch_df_den=welch_df2,
        welch_p_value=welch_p,
    )


# -- the analysis -----------------------------------------------------------------------------
def check_options(
    *,
    test: str = "auto",
    posthoc: str | None = None,
    checks: str = "auto",
    alpha: float = ALPHA,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """The options of :func:`anova` checked (a one-line :class:`AnalysisError` each)."""
    if test not in TEST_CHOICES:
        raise AnalysisError(f"--test {test!r}: give one of {', '.join(TEST_CHOICES)}")
    if checks not in CHECKS_CHOICES:
        raise AnalysisError(f"--checks {checks!r}: give one of {', '.join(CHECKS_CHOICES)}")
    if posthoc is not None:
        check_method(posthoc)
    return {"test": test, "posthoc": posthoc, "checks": checks, "alpha": check_alpha(alpha),
            "seed": check_seed(seed)}  # fmt: skip


def anova_levels(
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, group: str,
    strata: Sequence[str] = (),
    extent: Mapping[tuple[Any, ...], tuple[int, float, float]] | None = None,
) -> dict[tuple[Any, ...], list[LevelStats]]:  # fmt: skip
    """Per stratum (the values of ``strata``, as stored): the per-level statistics every
    ANOVA needs by default (:func:`analysis.query.level_stats`: two plain GROUP BY passes for
    all strata at once; ``extent``: pass 1's answer, see there)."""
    out: dict[tuple[Any, ...], list[LevelStats]] = {}
    for r in level_stats(con, sel, metric=metric, keys=[*strata, group], strata=len(strata),
                         far_k=FAR_OUT_K, extent=extent):  # fmt: skip
        out.setdefault(r.key[:-1], []).append(r)
    return out


def anova(
    db: Database,
    *,
    group: str,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    posthoc: str | None = None,
    alpha: float = ALPHA,
    seed: int = DEFAULT_SEED,
    test: str = "auto",
    checks: str = "auto",
) -> AnovaResult:
    """One-way ANOVA of ``metric`` across the levels of ``group`` (ok, non-warm-up trials),
    with Welch's ANOVA, Kruskal–Wallis, Brown–Forsythe and Shapiro–Wilk, a recommendation,
    and, when ``posthoc`` is one of ``tukey``, ``games-howell``, ``pairwise``, every pair of
    levels compared (see :mod:`analysis.posthoc`). ``alpha`` is the level of the checks and the
    post-hoc decisions; ``seed`` picks the Shapiro–Wilk sample above 5000 trials. ``test``:
    ``auto`` (the rule in the module docstring: Welch's ANOVA unless a level is clearly
    heavy-tailed) or the test to recommend (``anova`` for the classic F, ``welch``,
    ``kruskal``). ``checks``: ``auto`` runs Kruskal–Wallis and Shapiro–Wilk (which rank or
    sample every value) up to :data:`CHECKS_AUTO_MAX_N` trials, and Kruskal–Wallis beyond that
    only when it is asked for or recommended (heavy tails); ``all`` runs both always. The
    result's ``not_run`` names the checks left out."""
    opts = check_options(test=test, posthoc=posthoc, checks=checks, alpha=alpha, seed=seed)
    with connect(db) as con:
        sel = select(con, metric=metric, group=[group], where=where, include_warmup=include_warmup)
        finite_check(con, sel, [(metric, "--metric")])
        levels = anova_levels(con, sel, metric=metric, group=group).get((), [])
        return anova_of_levels(con, sel, levels, metric=metric, group=group, **opts)


def anova_of_levels(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    levels: Sequence[LevelStats],
    *,
    metric: str,
    group: str,
    posthoc: str | None = None,
    alpha: float = ALPHA,
    seed: int = DEFAULT_SEED,
    test: str = "auto",
    checks: str = "auto",
) -> AnovaResult:
    """:func:`anova` from the per-level statistics of ``sel`` (:func:`anova_levels`); ``sel``
    is only read again for the checks that rank or sample (see ``checks``)."""
    if not levels:
        raise no_trials_error(sel, metric)
    scale = levels[0].scale
    groups = [
        GroupMoments(format_level(lv.key[-1]), lv.n, lv.shift, lv.mean_dev, lv.var) for lv in levels
    ]
    result = anova_from_moments(groups, metric=metric, group=group, where=sel.where_text)
    far_out = [None if lv.n < TAIL_MIN_N else lv.far_out for lv in levels]
    abs_dev = [GroupMoments(g.level, g.n, 0.0, lv.abs_mean, lv.abs_var)
               for g, lv in zip(groups, levels, strict=True)]  # fmt: skip
    heavy = any(k is not None and k >= HEAVY_MIN_COUNT for k in far_out)
    small = result.n <= CHECKS_AUTO_MAX_N or checks == "all"
    not_run = []
    kruskal_h = kruskal_df = kruskal_p = NAN
    if small or heavy or test == "kruskal":
        ranks = rank_sums(con, sel, metric=metric, group=group)
        assert ranks.n == tuple(g.n for g in groups), "rank sums and moments disagree on levels"
        kruskal_h, kruskal_df, kruskal_p = kruskal_from_ranks(ranks)
    else:
        not_run.append("kruskal")
    residuals = None
    if small:
        residuals = residual_sample(con, sel, levels, metric=metric, group=group,
                                    n_total=result.n, seed=seed)  # fmt: skip
    else:
        not_run.append("shapiro")
    levene = levene_from_moments(abs_dev)
    shapiro_w, shapiro_p = shapiro_wilk(residuals) if residuals is not None else (NAN, NAN)
    notes = check_notes(result, groups, group=group, levene=levene, shapiro_w=shapiro_w,
                        residuals=residuals, kruskal_h=kruskal_h, not_run=not_run)  # fmt: skip
    recommended, recommendation = recommend(
        welch_p=result.welch_p_value,
        kruskal_p=kruskal_p,
        levene_p=levene[3],
        far_out=far_out,
        levels=[g.level for g in groups],
        sizes=[g.n for g in groups],
        alpha=alpha,
        test=test,
        levene_reason=notes.levene_reason,
    )
    return replace(
        result,
        kruskal_statistic=kruskal_h,
        kruskal_df=kruskal_df,
        kruskal_p_value=kruskal_p,
        levene_statistic=levene[0],
        levene_df_num=levene[1],
        levene_df_den=levene[2],
        levene_p_value=levene[3],
        shapiro_statistic=shapiro_w,
        shapiro_p_value=shapiro_p,
        shapiro_n=0 if residuals is None else len(residuals),
        seed=seed,
        alpha=alpha,
        recommended=recommended,
        recommendation=recommendation,
        notes=notes.notes,
        far_out=tuple(far_out),
        not_run=tuple(not_run),
        groups=tuple(replace(g, mean=g.mean * scale, sd=g.sd * scale) for g in result.groups),
        posthoc=None
        if posthoc is None
        else posthoc_from_moments(
            groups, method=posthoc, metric=metric, group=group, alpha=alpha
        ).rescaled(scale),
    )
