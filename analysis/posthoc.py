"""Post-hoc comparisons of every pair of levels after a one-way ANOVA, from the per-level
sufficient statistics (n, shift, mean_dev, var) computed in DuckDB: no raw rows.

Three methods (``POSTHOC_METHODS``):

- ``tukey``: Tukey–Kramer HSD. Pooled within-group variance (the ANOVA's mean square error,
  ``df = N - k``); ``statistic = mean_diff / se`` with ``se = sqrt(MSE (1/n_a + 1/n_b))``; the
  p-value and the simultaneous CI come from the studentized range distribution with ``k`` means
  (``q = |statistic| * sqrt(2)``), as ``scipy.stats.tukey_hsd``.
- ``games-howell``: the same with each pair's own Welch standard error and Welch–Satterthwaite
  degrees of freedom (unequal variances), as ``scipy.stats.tukey_hsd(equal_var=False)`` and
  ``pingouin.pairwise_gameshowell``.
- ``pairwise``: a Welch t-test per pair, p-values adjusted by Holm's step-down method. Holm has
  no matching simultaneous interval, so ``ci_low``/``ci_high`` are NaN.

``mean_diff`` is ``mean_a - mean_b`` with ``a`` the earlier level in level order. ``reject``
is ``p_value < alpha``; the intervals are simultaneous at ``1 - alpha``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from analysis.anova_text import wrap
from analysis.data import GroupMoments, fmt_p, latex_table, render_table
from analysis.errors import AnalysisError
from analysis.options import ALPHA, check_alpha
from analysis.tables import Table
from analysis.ttest import mean_difference, ttest_from_moments, welch_df

if TYPE_CHECKING:
    import pandas as pd

POSTHOC_METHODS = ("tukey", "games-howell", "pairwise")
METHOD_TITLES = {
    "tukey": "Tukey-Kramer HSD",
    "games-howell": "Games-Howell",
    "pairwise": "Welch t-tests, Holm-adjusted",
}
#: Columns of :meth:`PosthocResult.to_frame`, in order.
PAIR_COLUMNS = (
    "a",
    "b",
    "mean_diff",
    "se",
    "statistic",
    "df",
    "p_value",
    "ci_low",
    "ci_high",
    "reject",
)


@dataclass(frozen=True)
class PairComparison:
    """One pair of levels: ``mean_diff = mean_a - mean_b``, its standard error, the t-like
    ``statistic = mean_diff / se``, degrees of freedom, adjusted p-value and simultaneous CI
    (NaN where the method has none)."""

    a: str
    b: str
    mean_diff: float
    se: float
    statistic: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    reject: bool


@dataclass(frozen=True)
class PosthocResult:
    """Every pair of levels compared by ``method`` (one of :data:`POSTHOC_METHODS`)."""

    method: str
    metric: str
    group: str
    alpha: float
    pairs: tuple[PairComparison, ...]
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return METHOD_TITLES[self.method]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "metric": self.metric,
            "group": self.group,
            "alpha": self.alpha,
            "pairs": [asdict(p) for p in self.pairs],
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per pair, columns :data:`PAIR_COLUMNS`."""
        import pandas as pd

        return pd.DataFrame([asdict(p) for p in self.pairs], columns=list(PAIR_COLUMNS))

    def tables(self) -> list[Table]:
        """``pairs`` (every pair, with the method and alpha that judged it), and ``notes``
        when there are any: every statistic the text shows."""
        import pandas as pd

        pairs = self.to_frame()
        pairs["method"] = self.method
        pairs["alpha"] = self.alpha
        out = [Table("pairs", pairs, f"{self.title} of {self.metric} by {self.group}")]
        if self.notes:
            out.append(Table("posthoc_notes", pd.DataFrame({"note": list(self.notes)})))
        return out

    def rescaled(self, scale: float) -> PosthocResult:
        """The same comparisons of data that were divided by ``scale`` before the moments
        (differences, standard errors and intervals multiplied back; t, df and p unchanged)."""
        if scale == 1.0:
            return self
        pairs = tuple(
            dataclasses.replace(
                p,
                mean_diff=p.mean_diff * scale,
                se=p.se * scale,
                ci_low=p.ci_low * scale,
                ci_high=p.ci_high * scale,
            )
            for p in self.pairs
        )
        return dataclasses.replace(self, pairs=pairs)

    def _rows(self, *, p_text: bool) -> list[tuple]:
        return [
            (
                p.a,
                p.b,
                p.mean_diff,
                p.se,
                p.statistic,
                p.df,
                fmt_p(p.p_value) if p_text else p.p_value,
                p.ci_low,
                p.ci_high,
                "yes" if p.reject else "no",
            )
            for p in self.pairs
        ]

    def to_latex(self) -> str:
        """The pair table as a LaTeX ``tabular``."""
        return latex_table(list(PAIR_COLUMNS), self._rows(p_text=False))

    def __str__(self) -> str:
        level = f"{(1 - self.alpha) * 100:g}%"
        head = (
            f"Post-hoc comparisons of {self.metric} by {self.group}: {self.title} "
            f"(alpha = {self.alpha:g})"
        )
        if self.method == "pairwise":
            head += "; Holm has no simultaneous CI"
        headers = ["a", "b", "mean_diff (a - b)", "se", "t", "df", "p_adj"]
        headers += [f"ci_low ({level})", "ci_high", "reject"]
        rows = self._rows(p_text=True)
        if self.method == "pairwise":
            headers = headers[:7] + headers[9:]
            rows = [r[:7] + r[9:] for r in rows]
        lines = [wrap(head), render_table(headers, rows)]
        lines += [wrap(n, prefix="note: ") for n in self.notes]
        return "\n".join(lines)


def check_method(method: str) -> str:
    """``method`` when it is one of :data:`POSTHOC_METHODS`, else a one-line error."""
    if method not in POSTHOC_METHODS:
        raise AnalysisError(
            f"--posthoc {method!r} is not a post-hoc method; use one of "
            f"{', '.join(POSTHOC_METHODS)}"
        )
    return method


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment; NaN p-values stay NaN and are not counted in the family."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(order)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _pairs(groups: Sequence[GroupMoments]) -> list[tuple[GroupMoments, GroupMoments]]:
    return [(ga, gb) for i, ga in enumerate(groups) for gb in groups[i + 1 :]]


def _nan_pair(ga: GroupMoments, gb: GroupMoments, mean_diff: float) -> PairComparison:
    nan = math.nan
    return PairComparison(ga.level, gb.level, mean_diff, nan, nan, nan, nan, nan, nan, False)


def _range_critical(k: int, df: float, alpha: float) -> float:
    """The ``1 - alpha`` quantile of the studentized range of ``k`` means over ``sqrt(2)``: the
    multiplier of a pair's standard error in its simultaneous CI."""
    from scipy import stats

    return float(stats.studentized_range.isf(alpha, k, df)) / math.sqrt(2)


def _range_pair(
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    se: float,
    df: float,
    k: int,
    alpha: float,
    critical: float | None = None,
) -> PairComparison:
    """A pair judged on the studentized range of ``k`` means (Tukey–Kramer, Games–Howell);
    ``critical`` is :func:`_range_critical` when the caller has it already (one ``df``)."""
    from scipy import stats

    mean_diff = mean_difference(ga, gb)
    t = mean_diff / se
    p_value = float(stats.studentized_range.sf(abs(t) * math.sqrt(2), k, df))
    if critical is None:
        critical = _range_critical(k, df, alpha)
    half = critical * se
    return PairComparison(
        a=ga.level,
        b=gb.level,
        mean_diff=mean_diff,
        se=se,
        statistic=t,
        df=df,
        p_value=min(1.0, max(0.0, p_value)),
        ci_low=mean_diff - half,
        ci_high=mean_diff + half,
        reject=p_value < alpha,
    )


def tukey_hsd(
    groups: Sequence[GroupMoments], *, alpha: float = ALPHA
) -> tuple[list[PairComparison], list[str]]:
    """Tukey–Kramer HSD from the levels' moments (pooled variance, ``df = N - k``)."""
    k = len(groups)
    n_total = sum(g.n for g in groups)
    df = float(n_total - k)
    mse = math.fsum((g.n - 1) * g.var for g in groups) / df
    critical = _range_critical(k, df, alpha)
    pairs = [
        _range_pair(
            ga,
            gb,
            se=math.sqrt(mse * (1 / ga.n + 1 / gb.n)),
            df=df,
            k=k,
            alpha=alpha,
            critical=critical,
        )
        for ga, gb in _pairs(groups)
    ]
    return pairs, []


def games_howell(
    groups: Sequence[GroupMoments], *, alpha: float = ALPHA
) -> tuple[list[PairComparison], list[str]]:
    """Games–Howell: each pair's Welch standard error and degrees of freedom."""
    k = len(groups)
    pairs, notes = [], []
    for ga, gb in _pairs(groups):
        va, vb = ga.var / ga.n, gb.var / gb.n
        if va + vb == 0:
            pairs.append(_nan_pair(ga, gb, mean_difference(ga, gb)))
            notes.append(_zero_variance_note(ga, gb))
            continue
        df = welch_df(ga.var, ga.n, gb.var, gb.n)
        pairs.append(_range_pair(ga, gb, se=math.sqrt(va + vb), df=df, k=k, alpha=alpha))
    return pairs, notes


def pairwise_welch(
    groups: Sequence[GroupMoments], *, metric: str, group: str, alpha: float = ALPHA
) -> tuple[list[PairComparison], list[str]]:
    """A Welch t-test per pair, Holm-adjusted p-values (no simultaneous CI)."""
    raw, notes = [], []
    for ga, gb in _pairs(groups):
        if ga.var == 0 and gb.var == 0:
            raw.append(_nan_pair(ga, gb, mean_difference(ga, gb)))
            notes.append(_zero_variance_note(ga, gb))
            continue
        t = ttest_from_moments(ga, gb, metric=metric, group=group, equal_var=False)
        raw.append(
            PairComparison(
                a=t.a,
                b=t.b,
                mean_diff=t.mean_diff,
                se=t.standard_error,
                statistic=t.statistic,
                df=t.df,
                p_value=t.p_value,
                ci_low=math.nan,
                ci_high=math.nan,
                reject=False,
            )
        )
    adjusted = holm([p.p_value for p in raw])
    pairs = [
        dataclasses.replace(p, p_value=adj, reject=adj < alpha)
        for p, adj in zip(raw, adjusted, strict=True)
    ]
    return pairs, notes


def _zero_variance_note(ga: GroupMoments, gb: GroupMoments) -> str:
    return (
        f"{ga.level} vs {gb.level}: both levels have zero variance, so the pair's test is "
        "undefined (left out of the comparison)"
    )


def posthoc_from_moments(
    groups: Sequence[GroupMoments],
    *,
    method: str,
    metric: str,
    group: str,
    alpha: float = ALPHA,
) -> PosthocResult:
    """Compare every pair of ``groups`` (at least two levels of at least two trials each; the
    caller checks) with ``method``."""
    check_method(method)
    alpha = check_alpha(alpha)
    if method == "tukey":
        pairs, notes = tukey_hsd(groups, alpha=alpha)
    elif method == "games-howell":
        pairs, notes = games_howell(groups, alpha=alpha)
    else:
        pairs, notes = pairwise_welch(groups, metric=metric, group=group, alpha=alpha)
    return PosthocResult(
        method=method,
        metric=metric,
        group=group,
        alpha=alpha,
        pairs=tuple(pairs),
        notes=tuple(notes),
    )
