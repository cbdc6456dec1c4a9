"""Mid-ranks computed in DuckDB, for the rank tests (Mann–Whitney U, Kruskal–Wallis).

The pooled sample is ranked with a window function (tied values share the average of the ranks
they span, as ``scipy.stats.rankdata``); Python only receives one row per level: its count and
rank sum, plus the tie term ``sum(t^3 - t)`` over groups of tied values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from analysis.data import VIEW, Selection, execute, format_level, quote
from analysis.errors import AnalysisError


@dataclass(frozen=True)
class RankSums:
    """Per level (sorted by value): trial count and sum of mid-ranks in the pooled sample."""

    levels: tuple[str, ...]
    n: tuple[int, ...]
    rank_sum: tuple[float, ...]
    tie_term: float  # sum over groups of tied values of t^3 - t

    @property
    def n_total(self) -> int:
        return sum(self.n)

    def of(self, level: str) -> tuple[int, float]:
        """``(n, rank_sum)`` of one level."""
        i = self.levels.index(level)
        return self.n[i], self.rank_sum[i]


def rank_sums(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    group: str,
    levels: Sequence[str] | None = None,
) -> RankSums:
    """Rank ``metric`` over the selected trials of ``levels`` of ``group`` (all levels when
    None; levels as :func:`analysis.data.format_level` writes them) and sum the ranks per level.

    Rows with a NULL metric or group value are left out. NaN values are refused (their rank is
    undefined).
    """
    m, g = quote(metric), quote(group)
    x = f"CAST({m} AS DOUBLE)"
    conds = [f"{m} IS NOT NULL", f"{g} IS NOT NULL"]
    params = list(sel.params)
    if levels is not None:
        raw = execute(con, f"SELECT DISTINCT {g} FROM {VIEW}{sel.where_and(*conds)}", sel.params)
        wanted = {format_level(r[0]): r[0] for r in raw}
        missing = [lv for lv in levels if lv not in wanted]
        if missing:
            raise AnalysisError(
                f"--group {group}: level {missing[0]} has no trial with {metric}; levels "
                f"present: {', '.join(sorted(wanted))}"
            )
        conds.append(f"{g} IN ({', '.join('?' for _ in levels)})")
        params += [wanted[lv] for lv in levels]
    where_sql = sel.where_and(*conds)
    nan = execute(con, f"SELECT count(*) FILTER (WHERE isnan({x})) FROM {VIEW}{where_sql}", params)[
        0
    ][0]
    if nan:
        raise AnalysisError(
            f"{metric} is NaN in {nan} selected trials, so they cannot be ranked; exclude them, "
            f"e.g. --where '{metric}<1e308'"
        )
    sql = f"""
        WITH s AS (SELECT {g} AS g, {x} AS x FROM {VIEW}{where_sql}),
        t AS (SELECT x, count(*) AS t FROM s GROUP BY x),
        r AS (SELECT x, t, sum(t) OVER (ORDER BY x) - t + (t + 1) / 2.0 AS rk FROM t)
        SELECT s.g, count(*), sum(r.rk),
               (SELECT CAST(sum(CAST(t AS HUGEINT) * t * t - t) AS DOUBLE) FROM t)
        FROM s JOIN r USING (x) GROUP BY s.g ORDER BY s.g
    """
    rows = execute(con, sql, params)
    if not rows:
        return RankSums((), (), (), 0.0)
    return RankSums(
        levels=tuple(format_level(r[0]) for r in rows),
        n=tuple(int(r[1]) for r in rows),
        rank_sum=tuple(float(r[2]) for r in rows),
        tie_term=float(rows[0][3]),
    )
