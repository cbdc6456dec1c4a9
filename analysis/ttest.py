"""Two-sample t-test (Welch by default, Student on request) between two levels of one factor,
from per-group sufficient statistics computed in DuckDB."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from analysis.data import (
    Database,
    Filter,
    GroupMoments,
    Selection,
    fmt,
    fmt_p,
    format_level,
    load_groups,
    render_table,
)
from analysis.errors import AnalysisError
from analysis.intervals import t_interval

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TtestResult:
    """Difference of means ``mean_a - mean_b`` with its t test, CI and Cohen's d."""

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

    @property
    def standard_error(self) -> float:
        """Standard error of ``mean_diff`` (pooled when ``equal_var``)."""
        return _standard_error(
            self.sd_a**2, self.n_a, self.sd_b**2, self.n_b, equal_var=self.equal_var
        )

    def confidence_interval(self, confidence_level: float = 0.95) -> tuple[float, float]:
        """Two-sided CI of ``mean_diff`` at ``confidence_level`` (no refit)."""
        return t_interval(self.mean_diff, self.standard_error, self.df, confidence_level)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["where"] = list(self.where)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row: every field of the result (``where`` joined with spaces)."""
        import pandas as pd

        row = self.to_dict()
        row["where"] = " ".join(self.where)
        return pd.DataFrame([row])

    def __str__(self) -> str:
        kind = "Student" if self.equal_var else "Welch"
        where = f"; where {' '.join(self.where)}" if self.where else ""
        head = f"{kind} t-test of {self.metric}: {self.group}={self.a} vs {self.b}{where}"
        table = render_table(
            [self.group, "n", f"mean {self.metric}", "sd"],
            [
                (self.a, self.n_a, self.mean_a, self.sd_a),
                (self.b, self.n_b, self.mean_b, self.sd_b),
            ],
        )
        tail = (
            f"mean_diff ({self.a} - {self.b}) = {fmt(self.mean_diff)}, "
            f"95% CI [{fmt(self.ci_low)}, {fmt(self.ci_high)}]\n"
            f"t({fmt(self.df)}) = {fmt(self.statistic)}, p = {fmt_p(self.p_value)}, "
            f"cohens_d = {fmt(self.cohens_d, 4)}"
        )
        return f"{head}\n{table}\n{tail}"


def pooled_var(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """The two groups' pooled sample variance (``n_a + n_b - 2`` degrees of freedom)."""
    return ((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2)


def mean_difference(ga: GroupMoments, gb: GroupMoments) -> float:
    """``mean_a - mean_b``, with the shifts subtracted apart from the shifted means."""
    return (ga.shift - gb.shift) + (ga.mean_dev - gb.mean_dev)


def _standard_error(var_a: float, n_a: int, var_b: float, n_b: int, *, equal_var: bool) -> float:
    if equal_var:
        return math.sqrt(pooled_var(var_a, n_a, var_b, n_b) * (1.0 / n_a + 1.0 / n_b))
    return math.sqrt(var_a / n_a + var_b / n_b)


def _welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    va, vb = var_a / n_a, var_b / n_b
    return (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))


def ttest_from_moments(
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
    equal_var: bool = False,
    where: tuple[str, ...] = (),
) -> TtestResult:
    from scipy import stats

    for g in (ga, gb):
        if g.n < 2:
            raise AnalysisError(
                f"--group {group}: level {g.level} has only {g.n} trial with {metric}; a t-test "
                "needs at least 2 per level: run more trials or compare other levels"
            )
    if ga.var == 0 and gb.var == 0:
        raise AnalysisError(
            f"{metric} has zero variance in both {group}={ga.level} and {group}={gb.level} "
            "(all values equal), so the t statistic is undefined; check the data or pick "
            "another --metric"
        )
    mean_diff = mean_difference(ga, gb)
    se = _standard_error(ga.var, ga.n, gb.var, gb.n, equal_var=equal_var)
    df = float(ga.n + gb.n - 2) if equal_var else _welch_df(ga.var, ga.n, gb.var, gb.n)
    statistic = mean_diff / se
    p_value = float(2 * stats.t.sf(abs(statistic), df))
    ci_low, ci_high = t_interval(mean_diff, se, df, 0.95)
    pooled_sd = math.sqrt(pooled_var(ga.var, ga.n, gb.var, gb.n))
    return TtestResult(
        metric=metric,
        group=group,
        a=ga.level,
        b=gb.level,
        n_a=ga.n,
        n_b=gb.n,
        mean_a=ga.mean,
        mean_b=gb.mean,
        sd_a=math.sqrt(ga.var),
        sd_b=math.sqrt(gb.var),
        statistic=float(statistic),
        df=float(df),
        p_value=p_value,
        mean_diff=mean_diff,
        ci_low=ci_low,
        ci_high=ci_high,
        cohens_d=mean_diff / pooled_sd,
        equal_var=equal_var,
        where=where,
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
) -> TtestResult:
    """Compare ``metric`` between ``group=a`` and ``group=b`` (Welch unless ``student``)."""
    sel, ga, gb = two_levels(
        db, group=group, a=a, b=b, metric=metric, where=where, include_warmup=include_warmup
    )
    return ttest_from_moments(
        ga,
        gb,
        metric=metric,
        group=group,
        equal_var=student,
        where=sel.where_text,
    )
