"""One-way ANOVA of a metric across the levels of one factor, from per-group sufficient
statistics computed in DuckDB."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from analysis.data import (
    Database,
    Filter,
    GroupMoments,
    fmt,
    fmt_p,
    load_groups,
    render_table,
)
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class GroupStats:
    """One level of the group factor: its trial count, mean and sample standard deviation."""

    level: str
    n: int
    mean: float
    sd: float


@dataclass(frozen=True)
class AnovaResult:
    """A one-way ANOVA: F = (SS_between / df_num) / (SS_within / df_den)."""

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

    def to_dict(self) -> dict:
        return {
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

    def to_frame(self) -> pd.DataFrame:
        """One row per level: ``level, n, mean, sd``."""
        import pandas as pd

        return pd.DataFrame([asdict(g) for g in self.groups], columns=["level", "n", "mean", "sd"])

    def __str__(self) -> str:
        where = f"; where {' '.join(self.where)}" if self.where else ""
        head = f"One-way ANOVA of {self.metric} by {self.group} (n={self.n}{where})"
        table = render_table(
            [self.group, "n", f"mean {self.metric}", "sd"],
            [(g.level, g.n, g.mean, g.sd) for g in self.groups],
        )
        tail = (
            f"F({fmt(self.df_num)}, {fmt(self.df_den)}) = {fmt(self.statistic)}, "
            f"p = {fmt_p(self.p_value)}, eta_sq = {fmt(self.eta_sq, 4)}"
        )
        return f"{head}\n{table}\n{tail}"


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
    """F test from per-group (n, shift, mean_dev, var); means compared relative to one shift."""
    from scipy import stats

    check_levels(groups, group=group, metric=metric)
    ref = groups[0].shift
    rel = [(g.shift - ref) + g.mean_dev for g in groups]
    n_total = sum(g.n for g in groups)
    grand = math.fsum(g.n * r for g, r in zip(groups, rel, strict=True)) / n_total
    ss_between = math.fsum(g.n * (r - grand) ** 2 for g, r in zip(groups, rel, strict=True))
    ss_within = math.fsum((g.n - 1) * g.var for g in groups)
    if ss_within == 0:
        raise AnalysisError(
            f"every level of --group {group} has zero variance in {metric} (all values equal "
            "within each level), so the F statistic is undefined; check the data or pick "
            "another --metric"
        )
    df_num = float(len(groups) - 1)
    df_den = float(n_total - len(groups))
    statistic = (ss_between / df_num) / (ss_within / df_den)
    p_value = float(stats.f.sf(statistic, df_num, df_den))
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
        eta_sq=ss_between / (ss_between + ss_within),
        n=n_total,
        where=where,
    )


def anova(
    db: Database,
    *,
    group: str,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> AnovaResult:
    """One-way ANOVA of ``metric`` across the levels of ``group`` (ok, non-warm-up trials)."""
    sel, groups = load_groups(
        db, metric=metric, group=group, where=where, include_warmup=include_warmup
    )
    return anova_from_moments(groups, metric=metric, group=group, where=sel.where_text)
