"""The two-sample test's result object and its text and tables (no statistics computed here)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from analysis.data import fmt, p_text, render_table
from analysis.errors import AnalysisError
from analysis.intervals import t_interval
from analysis.lines import note_lines, wrap
from analysis.tables import Table
from analysis.twosample import standard_error

if TYPE_CHECKING:
    import pandas as pd

#: What each test is called in titles and notes.
TITLES = {"welch": "Welch t-test", "student": "Student t-test", "mwu": "Mann-Whitney U test"}
#: Columns of :meth:`TtestResult.tables`' ``levels`` table.
LEVEL_COLUMNS = ("group", "level", "n", "mean", "sd", "median")


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
        return standard_error(
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

    def tables(self) -> list[Table]:
        """``test``: :meth:`to_frame` (one row, every field, so every statistic the text shows);
        ``levels``: one row per level (``group``, ``level``, ``n``, ``mean``, ``sd``,
        ``median``), the text's table."""
        import pandas as pd

        levels = pd.DataFrame(
            [
                (self.group, self.a, self.n_a, self.mean_a, self.sd_a, self.median_a),
                (self.group, self.b, self.n_b, self.mean_b, self.sd_b, self.median_b),
            ],
            columns=list(LEVEL_COLUMNS),
        )
        caption = f"{TITLES[self.test]} of {self.metric}: {self.group}={self.a} vs {self.b}"
        return [
            Table("test", self.to_frame(), caption),
            Table("levels", levels, f"{self.metric} per level of {self.group}"),
        ]

    def __str__(self) -> str:
        return render(self)


def render(r: TtestResult) -> str:
    """The terminal text of a two-sample result, within 120 columns."""
    where = f"; where {' '.join(r.where)}" if r.where else ""
    head = f"{TITLES[r.test]} of {r.metric}: {r.group}={r.a} vs {r.b}{where}"
    if r.test == "mwu" and r.method == "asymptotic":
        head += "\np from the normal approximation, not the exact distribution (see note)"
    table = render_table(
        [r.group, "n", f"mean {r.metric}", "sd", "median"],
        [
            (r.a, r.n_a, r.mean_a, r.sd_a, r.median_a),
            (r.b, r.n_b, r.mean_b, r.sd_b, r.median_b),
        ],
    )
    pct = f"{fmt(100 * r.confidence_level)}%"
    diff = f"mean_diff ({r.a} - {r.b}) = {fmt(r.mean_diff)}"
    if math.isnan(r.cohens_d):
        effect = "cohens_d and hedges_g undefined (neither level varies)"
    else:
        effect = f"cohens_d = {fmt(r.cohens_d, 4)}, hedges_g = {fmt(r.hedges_g, 4)}"
    if r.test == "mwu":
        how = (
            "exact" if r.method == "exact" else "normal approximation, tie and continuity corrected"
        )
        lines = [
            f"U = {fmt(r.statistic)}, z = {fmt(r.z, 4)}, {p_text(r.p_value)} ({how})",
            f"rank_biserial = {fmt(r.rank_biserial, 4)} (> 0: {r.a} tends to be larger), "
            f"cles = P({r.a} > {r.b}) + P(tie)/2 = {fmt(r.cles, 4)}",
            f"{diff}, {effect}",
        ]
    else:
        lines = [
            f"{diff}, {pct} CI [{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
            f"t({fmt(r.df)}) = {fmt(r.statistic)}, {p_text(r.p_value)}, {effect}",
        ]
    lines.append(_ratio_text(r, pct))
    return "\n".join([wrap(head), table, *(wrap(line) for line in lines), *note_lines(r.notes)])


def _ratio_text(r: TtestResult, pct: str) -> str:
    """The ratio of means with Fieller's interval, then the bootstrap's on its own line."""
    if math.isnan(r.ratio):
        return f"ratio ({r.a} / {r.b}) undefined (mean of {r.b} is 0)"
    text = f"ratio ({r.a} / {r.b}) = {fmt(r.ratio)}"
    which = "Welch's t" if r.test != "student" else "Student's t"
    if math.isnan(r.ratio_fieller_low):
        text += f", {pct} CI unbounded (Fieller: the mean of {r.b} is not clearly away from 0)"
    else:
        text += f", {pct} CI [{fmt(r.ratio_fieller_low)}, {fmt(r.ratio_fieller_high)}]"
        if r.test != "mwu":
            text += f" (Fieller, from {which}: excludes 1 exactly when that test rejects)"
        else:
            text += f" (Fieller, from {which} on the same data, not from the U test)"
    if r.ratio_ci_method == "none":
        return text + "\n  (no bootstrap interval)"
    source = "" if r.ratio_ci_method == "bootstrap" else ", normal limit of the means"
    return (
        f"{text}\n  bootstrap {pct} CI [{fmt(r.ratio_ci_low)}, {fmt(r.ratio_ci_high)}] "
        f"(percentile bootstrap, {r.n_boot} resamples, seed {r.seed}{source})"
    )
