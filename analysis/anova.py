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
``1e12 + noise`` keeps its noise.

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from analysis.data import (
    VIEW,
    Database,
    Filter,
    GroupMoments,
    Selection,
    connect,
    execute,
    finite_check,
    fmt,
    fmt_p,
    format_level,
    frame_to_latex,
    group_moments,
    latex_table,
    no_trials_error,
    p_text,
    quote,
    render_table,
    select,
)
from analysis.errors import AnalysisError
from analysis.latex import latex_escape
from analysis.posthoc import PosthocResult, check_alpha, check_method, posthoc_from_moments
from analysis.ranks import RankSums, rank_sums
from analysis.smallsample import small_sample_note

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

ALPHA = 0.05
#: Shapiro–Wilk uses every residual up to this many trials, a seeded sample of this size above.
SHAPIRO_MAX_N = 5000
#: Kept for callers of the former rule (pooled residuals against 30 trials); unused.
SMALL_LEVEL_N = 30
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
DEFAULT_SEED = 0
RECOMMENDED = ("anova", "welch", "kruskal")
#: Columns of :meth:`AnovaResult.tests_frame`.
TEST_COLUMNS = ("test", "statistic", "df_num", "df_den", "p_value")

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

    def _tails_text(self) -> str:
        if not self.far_out:
            return "not checked"
        found = [
            f"{g.level}: {k} of {g.n}" for g, k in zip(self.groups, self.far_out, strict=True) if k
        ]
        unchecked = [g.level for g, k in zip(self.groups, self.far_out, strict=True) if k is None]
        text = ", ".join(found) if found else "none"
        if unchecked:
            text += f"; not checked (< {TAIL_MIN_N} trials): {', '.join(unchecked)}"
        return text

    @property
    def shapiro_sampled(self) -> bool:
        """True when Shapiro–Wilk ran on a sample of the residuals."""
        return 0 < self.shapiro_n < self.n

    def to_dict(self) -> dict:
        out = {
            "metric": self.metric,
            "group": self.group,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "df_num": self.df_num,
            "df_den": self.df_den,
            "eta_sq": self.eta_sq,
            "n": self.n,
            "where": list(self.where),
            "groups": [asdict(g) for g in self.groups],
        }
        for name in (
            "omega_sq",
            "welch_statistic",
            "welch_df_num",
            "welch_df_den",
            "welch_p_value",
            "kruskal_statistic",
            "kruskal_df",
            "kruskal_p_value",
            "levene_statistic",
            "levene_df_num",
            "levene_df_den",
            "levene_p_value",
            "shapiro_statistic",
            "shapiro_p_value",
            "shapiro_n",
            "seed",
            "alpha",
            "recommended",
            "recommendation",
        ):
            out[name] = getattr(self, name)
        out["notes"] = list(self.notes)
        out["posthoc"] = None if self.posthoc is None else self.posthoc.to_dict()
        out["far_out"] = list(self.far_out)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per level: ``level, n, mean, sd``."""
        import pandas as pd

        return pd.DataFrame([asdict(g) for g in self.groups], columns=["level", "n", "mean", "sd"])

    def table_frame(self) -> pd.DataFrame:
        """What ``--format csv`` prints: :meth:`to_frame`'s level rows, each also carrying the
        tests (``f``, ``f_df_num``, ``f_df_den``, ``f_p_value``, ``welch_f``, ``welch_df_num``,
        ``welch_df_den``, ``welch_p_value``, ``kruskal_h``, ``kruskal_df``, ``kruskal_p_value``)
        and the ``recommended`` test, so the file holds every statistic the text shows, and the
        ``notes`` joined with ``; ``."""
        frame = self.to_frame()
        extra = {
            "f": self.statistic,
            "f_df_num": self.df_num,
            "f_df_den": self.df_den,
            "f_p_value": self.p_value,
            "welch_f": self.welch_statistic,
            "welch_df_num": self.welch_df_num,
            "welch_df_den": self.welch_df_den,
            "welch_p_value": self.welch_p_value,
            "kruskal_h": self.kruskal_statistic,
            "kruskal_df": self.kruskal_df,
            "kruskal_p_value": self.kruskal_p_value,
            "recommended": self.recommended,
            "notes": "; ".join(self.notes),
        }
        for name, value in extra.items():
            frame[name] = value
        return frame

    def tests_frame(self) -> pd.DataFrame:
        """One row per test (columns :data:`TEST_COLUMNS`): the F test, Welch, Kruskal–Wallis,
        Brown–Forsythe and Shapiro–Wilk (NaN where a test has no such degree of freedom)."""
        import pandas as pd

        return pd.DataFrame(self._test_rows(), columns=list(TEST_COLUMNS))

    def _test_rows(self) -> list[tuple[str, float, float, float, float]]:
        return [
            ("anova", self.statistic, self.df_num, self.df_den, self.p_value),
            (
                "welch",
                self.welch_statistic,
                self.welch_df_num,
                self.welch_df_den,
                self.welch_p_value,
            ),
            ("kruskal", self.kruskal_statistic, self.kruskal_df, NAN, self.kruskal_p_value),
            (
                "brown_forsythe",
                self.levene_statistic,
                self.levene_df_num,
                self.levene_df_den,
                self.levene_p_value,
            ),
            ("shapiro", self.shapiro_statistic, NAN, NAN, self.shapiro_p_value),
        ]

    def to_latex(self) -> str:
        """The level table, the test table, the recommendation and the post-hoc table."""
        parts = [
            frame_to_latex(self.to_frame()),
            latex_table(list(TEST_COLUMNS), [list(r) for r in self._test_rows()]),
        ]
        if self.recommendation:
            parts.append(latex_escape(self.recommendation))
        parts += [latex_escape(n) for n in self.notes if n not in self.recommendation]
        if self.posthoc is not None:
            parts.append(self.posthoc.to_latex())
        return "\n\n".join(parts)

    def __str__(self) -> str:
        where = f"; where {' '.join(self.where)}" if self.where else ""
        head = f"One-way ANOVA of {self.metric} by {self.group} (n={self.n}{where})"
        table = render_table(
            [self.group, "n", f"mean {self.metric}", "sd"],
            [(g.level, g.n, g.mean, g.sd) for g in self.groups],
        )
        tail = (
            f"F({fmt(self.df_num)}, {fmt(self.df_den)}) = {fmt(self.statistic)}, "
            f"{p_text(self.p_value)}, eta_sq = {fmt(self.eta_sq, 4)}, "
            f"omega_sq = {fmt(self.omega_sq, 4)}"
        )
        if self.shapiro_sampled:
            sw = f"Shapiro-Wilk (sample of {self.shapiro_n}, seed {self.seed})"
        else:
            sw = f"Shapiro-Wilk (n={self.shapiro_n})"
        checks = render_table(
            ["assumption", "test", "statistic", "p"],
            [
                (
                    "equal variances",
                    "Brown-Forsythe (Levene, median)",
                    _f_text(self.levene_statistic, self.levene_df_num, self.levene_df_den),
                    _checked_p(self.levene_p_value),
                ),
                (
                    "normal residuals (pooled)",
                    sw,
                    "not checked"
                    if math.isnan(self.shapiro_statistic)
                    else f"W = {fmt(self.shapiro_statistic)}",
                    _checked_p(self.shapiro_p_value),
                ),
                ("no heavy tails (per level)", "far-out values (3 IQR)", self._tails_text(), ""),
            ],
        )
        alternatives = render_table(
            ["for", "test", "statistic", "p"],
            [
                (
                    "unequal variances",
                    "Welch's ANOVA",
                    _f_text(self.welch_statistic, self.welch_df_num, self.welch_df_den),
                    fmt_p(self.welch_p_value),
                ),
                (
                    "rank-based",
                    "Kruskal-Wallis (tie-corrected)",
                    "-"
                    if math.isnan(self.kruskal_statistic)
                    else f"H({fmt(self.kruskal_df)}) = {fmt(self.kruskal_statistic)}",
                    fmt_p(self.kruskal_p_value),
                ),
            ],
        )
        blocks = [
            f"{head}\n{table}\n{tail}",
            f"Assumption checks (alpha = {self.alpha:g})\n{checks}",
            f"Alternatives\n{alternatives}",
        ]
        rec = self.recommendation
        rec += "".join(f"\nnote: {n}" for n in self.notes if n not in self.recommendation)
        blocks.append(rec)
        if self.posthoc is not None:
            blocks.append(str(self.posthoc))
        return "\n\n".join(blocks)


def _checked_p(p: float) -> str:
    return "not checked" if math.isnan(p) else fmt_p(p)


def _f_text(statistic: float, df_num: float, df_den: float) -> str:
    if math.isnan(statistic):
        return "not checked"
    return f"F({fmt(df_num)}, {fmt(df_den, 4)}) = {fmt(statistic)}"


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


def _relative_means(groups: Sequence[GroupMoments]) -> list[float]:
    """Level means relative to the first level's shift (the shifts subtracted apart)."""
    ref = groups[0].shift
    return [(g.shift - ref) + g.mean_dev for g in groups]


def _sums_of_squares(groups: Sequence[GroupMoments]) -> tuple[float, float]:
    """``(SS_between, SS_within)`` of the one-way layout."""
    rel = _relative_means(groups)
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
    rel = _relative_means(groups)
    w = [g.n / g.var for g in groups]
    sw = math.fsum(w)
    mean_w = math.fsum(wi * r for wi, r in zip(w, rel, strict=True)) / sw
    a = math.fsum(wi * (r - mean_w) ** 2 for wi, r in zip(w, rel, strict=True)) / (k - 1)
    tmp = math.fsum((1 - wi / sw) ** 2 / (g.n - 1) for wi, g in zip(w, groups, strict=True))
    statistic = a / (1 + 2 * (k - 2) / (k**2 - 1) * tmp)
    df_num, df_den = float(k - 1), (k**2 - 1) / (3 * tmp)
    return statistic, df_num, df_den, float(stats.f.sf(statistic, df_num, df_den))


def anova_from_moments(
    groups: Sequence[GroupMoments], *, metric: str, group: str, where: tuple[str, ...] = ()
) -> AnovaResult:
    """F test, eta², omega² and Welch's ANOVA from per-group (n, shift, mean_dev, var); means
    compared relative to one shift. The checks that need DuckDB are left NaN (see :func:`anova`)."""
    from scipy import stats

    check_levels(groups, group=group, metric=metric)
    ss_between, ss_within = _sums_of_squares(groups)
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
    p_value = float(stats.f.sf(statistic, df_num, df_den))
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

    ss_between, ss_within = _sums_of_squares(abs_dev)
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
def _shifted(sel: Selection, *, metric: str, group: str, extra: str = "") -> str:
    """``SELECT g, [extra,] d`` with ``d = metric - min(metric) over the level``."""
    m, g = quote(metric), quote(group)
    x = f"CAST({m} AS DOUBLE)"
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    return (
        f"SELECT {g} AS g, {extra}{x} - min({x}) OVER (PARTITION BY {g}) AS d "
        f"FROM {VIEW}{where_sql}"
    )


def abs_deviation_moments(
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, group: str
) -> list[GroupMoments]:
    """Per level (sorted by value): count, mean and sample variance of ``|x - level median|``,
    computed in DuckDB on the shifted values."""
    inner = _shifted(sel, metric=metric, group=group)
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
) -> np.ndarray:
    """Residuals ``x - level mean`` (shifted values minus their level mean, in DuckDB): all of
    them when ``n_total <= limit``, else the ``limit`` trials with the smallest
    ``md5(seed:trial_id)`` — a simple random sample that depends only on the seed and the trial
    ids (not on thread scheduling, unlike ``USING SAMPLE ... REPEATABLE``)."""
    import numpy as np

    key = "trial_id" if "trial_id" in sel.columns else None
    extra = "trial_id AS k, " if key else ""
    inner = _shifted(sel, metric=metric, group=group, extra=extra)
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
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, group: str
) -> list[int | None]:
    """Per level (sorted by value): :func:`far_out_count` computed in DuckDB (on the shifted
    values), None for levels of fewer than :data:`TAIL_MIN_N` trials."""
    inner = _shifted(sel, metric=metric, group=group)
    k = FAR_OUT_K
    sql = (
        "SELECT g, count(*), count(*) FILTER (WHERE d < q1 - ? * (q3 - q1) OR d > q3 + ? * "
        "(q3 - q1)) FROM (SELECT g, d, quantile_cont(d, 0.25) OVER (PARTITION BY g) AS q1, "
        f"quantile_cont(d, 0.75) OVER (PARTITION BY g) AS q3 FROM ({inner})) "
        "GROUP BY g ORDER BY g"
    )
    rows = execute(con, sql, [k, k, *sel.params])
    return [None if int(n) < TAIL_MIN_N else int(bad) for _, n, bad in rows]


# -- the analysis -----------------------------------------------------------------------------
def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise AnalysisError(f"--seed {seed!r} must be a whole number >= 0, e.g. --seed 0")
    return seed


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
) -> AnovaResult:
    """One-way ANOVA of ``metric`` across the levels of ``group`` (ok, non-warm-up trials),
    with Welch's ANOVA, Kruskal–Wallis, Brown–Forsythe and Shapiro–Wilk, a recommendation,
    and, when ``posthoc`` is one of ``tukey``, ``games-howell``, ``pairwise``, every pair of
    levels compared (see :mod:`analysis.posthoc`). ``alpha`` is the level of the checks and the
    post-hoc decisions; ``seed`` picks the Shapiro–Wilk sample above 5000 trials. ``test``:
    ``auto`` (the rule in the module docstring: Welch's ANOVA unless a level is clearly
    heavy-tailed) or the test to recommend (``anova`` for the classic F, ``welch``,
    ``kruskal``)."""
    if test not in TEST_CHOICES:
        raise AnalysisError(f"--test {test!r}: give one of {', '.join(TEST_CHOICES)}")
    if posthoc is not None:
        check_method(posthoc)
    alpha = check_alpha(alpha)
    seed = _check_seed(seed)
    with connect(db) as con:
        sel = select(con, metric=metric, group=[group], where=where, include_warmup=include_warmup)
        finite_check(con, sel, [(metric, "--metric")])
        groups = group_moments(con, sel, metric=metric, group=group)
        if not groups:
            raise no_trials_error(sel, metric)
        try:
            result = anova_from_moments(groups, metric=metric, group=group, where=sel.where_text)
        except OverflowError:
            raise AnalysisError(
                f"the spread of {metric} overflows a double (values near 1e154 or beyond); "
                "rescale the metric or exclude the extreme trials with --where"
            ) from None
        ranks = rank_sums(con, sel, metric=metric, group=group)
        abs_dev = abs_deviation_moments(con, sel, metric=metric, group=group)
        residuals = residual_sample(
            con, sel, metric=metric, group=group, n_total=result.n, seed=seed
        )
        far_out = far_out_counts(con, sel, metric=metric, group=group)
    assert ranks.n == tuple(g.n for g in groups), "rank sums and moments disagree on levels"
    kruskal_h, kruskal_df, kruskal_p = kruskal_from_ranks(ranks)
    levene = levene_from_moments(abs_dev)
    shapiro_w, shapiro_p = shapiro_wilk(residuals)

    notes = []
    levene_reason = ""
    if math.isnan(levene[0]):
        levene_reason = (
            "equal variances not checked: Brown-Forsythe could not run, as the absolute "
            "deviations from the level medians do not vary within any level (as with 2 trials "
            "per level)"
        )
        notes.append(levene_reason)
    if math.isnan(shapiro_w):
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
    if math.isnan(kruskal_h):
        notes.append("Kruskal-Wallis is undefined: every value is tied")
    few = small_sample_note([(g.level, g.n) for g in groups], what=f"{group}=")
    if few:
        notes.insert(0, few)
    assert len(far_out) == len(groups), "far-out counts and moments disagree on levels"
    recommended, recommendation = recommend(
        welch_p=result.welch_p_value,
        kruskal_p=kruskal_p,
        levene_p=levene[3],
        far_out=far_out,
        levels=[g.level for g in groups],
        sizes=[g.n for g in groups],
        alpha=alpha,
        test=test,
        levene_reason=levene_reason,
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
        shapiro_n=len(residuals),
        seed=seed,
        alpha=alpha,
        recommended=recommended,
        recommendation=recommendation,
        notes=tuple(notes),
        far_out=tuple(far_out),
        posthoc=None
        if posthoc is None
        else posthoc_from_moments(groups, method=posthoc, metric=metric, group=group, alpha=alpha),
    )
