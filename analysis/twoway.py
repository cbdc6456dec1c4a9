"""Two-way ANOVA with interaction (``analyze anova --group G --group G2``), from per-cell
sufficient statistics computed in DuckDB.

One query, whatever the number of trials: per cell (a level of G with a level of G2) the count
``n``, a shift (the cell's minimum, a data value), the mean and the sample variance of
``metric - shift``. The ANOVA table then follows exactly from the cells:

* the within-cell sum of squares ``sum (n_c - 1) var_c`` is the residual SS of the full model
  (G, G2 and G:G2 fit every cell mean);
* any model whose design is constant within cells (every sub-model here) has residual SS
  ``SS_within + sum n_c (m_c - fitted_c)^2``, ``fitted_c`` its weighted least-squares fit to the
  cell means ``m_c`` with weights ``n_c``. The SS of a term is the drop in residual SS between
  two nested models, i.e. ``sum n_c (fitted1_c - fitted0_c)^2``, computed as the projection of
  the smaller model's residuals (never as a difference of two large numbers).

Cell means enter relative to one reference shift (the first cell's), so data such as
``1e12 + noise`` keep their precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    check_distinct,
    connect,
    execute,
    finite_check,
    fmt_p,
    format_level,
    latex_table,
    no_trials_error,
    quote,
    render_table,
    select,
)
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

#: Columns of :meth:`TwoWayAnovaResult.to_frame`, one row per term (G, G2, G:G2, Residual).
TERM_COLUMNS = (
    "term",
    "sum_sq",
    "df",
    "mean_sq",
    "statistic",
    "p_value",
    "eta_sq",
    "eta_sq_partial",
    "omega_sq",
    "omega_sq_partial",
)
CELL_COLUMNS = ("level_a", "level_b", "n", "mean", "sd")
MARGINAL_COLUMNS = ("factor", "level", "n", "mean", "sd", "mean_unweighted")
SS_TYPES = (1, 2, 3)
RESIDUAL = "Residual"


@dataclass(frozen=True)
class TwoWayTerm:
    """One row of the ANOVA table.

    ``statistic`` is F = mean_sq / mean_sq(Residual) on (``df``, df(Residual)) degrees of
    freedom, ``p_value`` its upper tail. With MS_res the residual mean square, SS_total the sum
    of squares of every trial around the grand mean and N the trial count:

    * ``eta_sq`` = SS / SS_total; ``eta_sq_partial`` = SS / (SS + SS_res);
    * ``omega_sq`` = (SS - df MS_res) / (SS_total + MS_res);
    * ``omega_sq_partial`` = (SS - df MS_res) / (SS + (N - df) MS_res).

    The omegas are not clipped at 0 (a negative value: no detectable effect). On the Residual
    row only ``sum_sq``, ``df`` and ``mean_sq`` are set (the rest NaN).
    """

    term: str
    sum_sq: float
    df: float
    mean_sq: float
    statistic: float
    p_value: float
    eta_sq: float
    eta_sq_partial: float
    omega_sq: float
    omega_sq_partial: float


@dataclass(frozen=True)
class CellStats:
    """One cell: ``level_a`` of the first factor with ``level_b`` of the second; trial count,
    mean and sample standard deviation (NaN for a one-trial cell)."""

    level_a: str
    level_b: str
    n: int
    mean: float
    sd: float


@dataclass(frozen=True)
class MarginalStats:
    """One level of one factor over all levels of the other.

    ``mean`` and ``sd`` are those of the level's trials (the weighted marginal mean);
    ``mean_unweighted`` is the plain average of the level's cell means (the estimated marginal
    mean that Type III sums of squares compare).
    """

    factor: str
    level: str
    n: int
    mean: float
    sd: float
    mean_unweighted: float


@dataclass(frozen=True)
class TwoWayAnovaResult:
    """A two-way ANOVA with interaction of ``metric`` by ``groups`` (G, G2).

    ``terms`` are the rows G, G2, G:G2 and Residual (see :class:`TwoWayTerm` for the effect
    sizes); ``ss_type`` says how the sums of squares were taken: 1 sequential (G, then G2 given
    G, then G:G2), 2 each main effect given the other (statsmodels ``anova_lm(typ=2)``), 3 each
    term given all others with sum-to-zero contrasts (``anova_lm(typ=3)`` on
    ``C(G, Sum) * C(G2, Sum)``; the intercept row is left out). ``cells`` lists every
    combination, ``marginals`` every level of G then every level of G2.
    """

    metric: str
    groups: tuple[str, str]
    ss_type: int
    terms: tuple[TwoWayTerm, ...]
    cells: tuple[CellStats, ...]
    marginals: tuple[MarginalStats, ...]
    n: int
    where: tuple[str, ...]

    def term(self, name: str) -> TwoWayTerm:
        """The row for ``name`` (a factor, ``G:G2`` or ``Residual``)."""
        for t in self.terms:
            if t.term == name:
                return t
        raise KeyError(name)

    @property
    def residual(self) -> TwoWayTerm:
        return self.terms[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "groups": list(self.groups),
            "ss_type": self.ss_type,
            "n": self.n,
            "where": list(self.where),
            "terms": [asdict(t) for t in self.terms],
            "cells": [asdict(c) for c in self.cells],
            "marginals": [asdict(m) for m in self.marginals],
        }

    def to_frame(self) -> pd.DataFrame:
        """The ANOVA table: one row per term, columns :data:`TERM_COLUMNS`."""
        import pandas as pd

        return pd.DataFrame([asdict(t) for t in self.terms], columns=list(TERM_COLUMNS))

    def cell_frame(self) -> pd.DataFrame:
        """One row per cell, columns :data:`CELL_COLUMNS` (``level_a`` is a level of
        ``groups[0]``, ``level_b`` of ``groups[1]``)."""
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.cells], columns=list(CELL_COLUMNS))

    def marginal_frame(self) -> pd.DataFrame:
        """One row per level of each factor, columns :data:`MARGINAL_COLUMNS`."""
        import pandas as pd

        return pd.DataFrame([asdict(m) for m in self.marginals], columns=list(MARGINAL_COLUMNS))

    def _term_rows(self) -> list[tuple[Any, ...]]:
        return [
            (
                t.term,
                t.sum_sq,
                t.df,
                t.mean_sq,
                t.statistic,
                t.p_value,
                t.eta_sq_partial,
                t.omega_sq_partial,
            )
            for t in self.terms
        ]

    def to_latex(self) -> str:
        """Two ``tabular``s: the ANOVA table, then the cell means."""
        a, b = self.groups
        anova = latex_table(
            ["source", "sum_sq", "df", "mean_sq", "F", "p_value", "eta_sq_p", "omega_sq_p"],
            self._term_rows(),
        )
        cells = latex_table(
            [a, b, "n", f"mean {self.metric}", "sd"],
            [(c.level_a, c.level_b, c.n, c.mean, c.sd) for c in self.cells],
        )
        return anova + "\n\n" + cells

    def __str__(self) -> str:
        a, b = self.groups
        where = f"; where {' '.join(self.where)}" if self.where else ""
        head = (
            f"Two-way ANOVA of {self.metric} by {a} and {b} "
            f"(Type {'I' * self.ss_type} sums of squares; n={self.n}{where})"
        )
        cells = render_table(
            [a, b, "n", f"mean {self.metric}", "sd"],
            [(c.level_a, c.level_b, c.n, c.mean, c.sd) for c in self.cells],
        )
        margins = []
        for factor in self.groups:
            rows = [m for m in self.marginals if m.factor == factor]
            margins.append(
                render_table(
                    [factor, "n", f"mean {self.metric}", "sd", "unweighted mean"],
                    [(m.level, m.n, m.mean, m.sd, m.mean_unweighted) for m in rows],
                )
            )
        table = render_table(
            ["source", "sum_sq", "df", "mean_sq", "F", "p", "eta_sq_p", "omega_sq_p"],
            [
                (
                    t.term,
                    t.sum_sq,
                    t.df,
                    t.mean_sq,
                    t.statistic,
                    fmt_p(t.p_value),
                    t.eta_sq_partial,
                    t.omega_sq_partial,
                )
                for t in self.terms
            ],
        )
        return "\n\n".join([head, cells, *margins, table])


# -- DuckDB ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellMoments:
    """Sufficient statistics of one cell (``i``, ``j`` index the sorted levels)."""

    i: int
    j: int
    level_a: str
    level_b: str
    n: int
    shift: float
    mean_dev: float
    var: float  # sample variance; NaN when n < 2


def cell_moments(
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, groups: tuple[str, str]
) -> list[CellMoments]:
    """Per-cell count, shift, mean and sample variance of ``metric - shift`` (shift = the cell's
    minimum), computed in DuckDB. Rows with a NULL metric or factor are left out; levels are
    numbered in sorted order, cells come sorted by (G, G2)."""
    m, a, b = quote(metric), quote(groups[0]), quote(groups[1])
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{a} IS NOT NULL", f"{b} IS NOT NULL")
    sql = (
        "SELECT g1, g2, dense_rank() OVER (ORDER BY g1), dense_rank() OVER (ORDER BY g2), "
        "n, shift, mean_dev, var FROM ("
        "SELECT g1, g2, count(*) AS n, any_value(shift) AS shift, avg(x - shift) AS mean_dev, "
        "var_samp(x - shift) AS var FROM ("
        "SELECT g1, g2, x, min(x) OVER (PARTITION BY g1, g2) AS shift FROM ("
        f"SELECT {a} AS g1, {b} AS g2, CAST({m} AS DOUBLE) AS x FROM {VIEW}{where_sql})) "
        "GROUP BY g1, g2) ORDER BY g1, g2"
    )
    return [
        CellMoments(
            i=int(ri) - 1,
            j=int(rj) - 1,
            level_a=format_level(la),
            level_b=format_level(lb),
            n=int(n),
            shift=float(shift),
            mean_dev=float(mean_dev),
            var=math.nan if var is None else float(var),
        )
        for la, lb, ri, rj, n, shift, mean_dev, var in execute(con, sql, sel.params)
    ]


def _levels(cells: Sequence[CellMoments], which: str) -> list[str]:
    """Sorted level labels of factor ``a`` or ``b``."""
    index = {getattr(c, "i" if which == "a" else "j"): getattr(c, f"level_{which}") for c in cells}
    return [index[k] for k in range(len(index))]


def _check_cells(
    cells: Sequence[CellMoments], *, groups: tuple[str, str], metric: str
) -> tuple[list[str], list[str]]:
    """Two or more levels per factor, every combination present, residual df > 0."""
    a, b = groups
    levels_a, levels_b = _levels(cells, "a"), _levels(cells, "b")
    for name, levels in ((a, levels_a), (b, levels_b)):
        if len(levels) < 2:
            raise AnalysisError(
                f"--group {name} has only one level ({levels[0]}) in the selected trials with "
                f"{metric}; pick a factor that varies, or loosen --where"
            )
    present = {(c.i, c.j) for c in cells}
    missing = [
        (la, lb)
        for i, la in enumerate(levels_a)
        for j, lb in enumerate(levels_b)
        if (i, j) not in present
    ]
    if missing:
        la, lb = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise AnalysisError(
            f"no trials with {metric} for {a}={la}, {b}={lb}{more}, so the {a}:{b} interaction "
            f"is not estimable; run that combination, or exclude a level with "
            f"--where {a}!={la} or --where {b}!={lb}"
        )
    if all(c.n < 2 for c in cells):
        raise AnalysisError(
            f"every {a} x {b} cell has a single trial with {metric}, so no residual degrees of "
            "freedom are left beside the interaction; run at least 2 trials in some cell "
            "(more repetitions)"
        )
    return levels_a, levels_b


# -- sums of squares ---------------------------------------------------------------------------
def _sum_coding(index: np.ndarray, k: int) -> np.ndarray:
    """Sum-to-zero contrast columns of a factor with ``k`` levels (the last level gets -1)."""
    import numpy as np

    x = np.zeros((len(index), k - 1))
    for col in range(k - 1):
        x[index == col, col] = 1.0
    x[index == k - 1, :] = -1.0
    return x


def _project(x: np.ndarray, y: np.ndarray, sw: np.ndarray) -> np.ndarray:
    """Weighted least-squares fit of ``y`` on ``x`` (weights ``sw**2``): the fitted values."""
    import numpy as np

    beta = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
    return x @ beta


def _extra_ss(
    x0: np.ndarray, x1: np.ndarray | None, y: np.ndarray, w: np.ndarray, sw: np.ndarray
) -> float:
    """``sum w (fit1 - fit0)^2``: the drop in residual SS from the model ``x0`` to the larger
    model ``x1`` (None: the saturated model, which fits every cell mean). Computed by
    projecting the residuals of ``x0`` (refined once), not by subtracting two fits of ``y``."""
    e0 = y - _project(x0, y, sw)
    e0 = e0 - _project(x0, e0, sw)
    d = e0 if x1 is None else _project(x1, e0, sw)
    return math.fsum((w * d * d).tolist())


def _term_ss(
    cells: Sequence[CellMoments], rel: np.ndarray, n_a: int, n_b: int, ss_type: int
) -> tuple[float, float, float, float]:
    """Sums of squares of G, G2, G:G2 (of type ``ss_type``) and the between-cell SS."""
    import numpy as np

    w = np.array([c.n for c in cells], dtype=float)
    sw = np.sqrt(w)
    xa = _sum_coding(np.array([c.i for c in cells]), n_a)
    xb = _sum_coding(np.array([c.j for c in cells]), n_b)
    xab = (xa[:, :, None] * xb[:, None, :]).reshape(len(cells), -1)
    one = np.ones((len(cells), 1))

    def model(*parts: np.ndarray) -> np.ndarray:
        return np.hstack([one, *parts])

    # Centre on the weighted grand mean: smaller numbers, same sums of squares.
    y = rel - float(np.average(rel, weights=w))
    m1, ma, mb, mab = model(), model(xa), model(xb), model(xa, xb)
    if ss_type == 1:
        ss = (_extra_ss(m1, ma, y, w, sw), _extra_ss(ma, mab, y, w, sw))
    elif ss_type == 2:
        ss = (_extra_ss(mb, mab, y, w, sw), _extra_ss(ma, mab, y, w, sw))
    else:
        ss = (
            _extra_ss(model(xb, xab), None, y, w, sw),
            _extra_ss(model(xa, xab), None, y, w, sw),
        )
    ss_ab = _extra_ss(mab, None, y, w, sw)
    ss_between = _extra_ss(m1, None, y, w, sw)
    return ss[0], ss[1], ss_ab, ss_between


def twoway_from_cells(
    cells: Sequence[CellMoments],
    *,
    metric: str,
    groups: tuple[str, str],
    ss_type: int = 2,
    where: tuple[str, ...] = (),
) -> TwoWayAnovaResult:
    """The ANOVA table, cell and marginal statistics from per-cell moments."""
    import numpy as np
    from scipy import stats

    a, b = groups
    levels_a, levels_b = _check_cells(cells, groups=groups, metric=metric)
    n_total = sum(c.n for c in cells)
    ss_within = math.fsum((c.n - 1) * c.var for c in cells if c.n > 1)
    if ss_within == 0:
        raise AnalysisError(
            f"every {a} x {b} cell has zero variance in {metric} (all values equal within each "
            "cell), so the F statistics are undefined; check the data or pick another --metric"
        )
    ref = cells[0].shift
    rel = np.array([(c.shift - ref) + c.mean_dev for c in cells])
    ss_a, ss_b, ss_ab, ss_between = _term_ss(cells, rel, len(levels_a), len(levels_b), ss_type)
    ss_total = ss_within + ss_between
    df_res = float(n_total - len(cells))
    ms_res = ss_within / df_res

    def row(term: str, ss: float, df: float) -> TwoWayTerm:
        statistic = (ss / df) / ms_res
        return TwoWayTerm(
            term=term,
            sum_sq=ss,
            df=df,
            mean_sq=ss / df,
            statistic=statistic,
            p_value=float(stats.f.sf(statistic, df, df_res)),
            eta_sq=ss / ss_total,
            eta_sq_partial=ss / (ss + ss_within),
            omega_sq=(ss - df * ms_res) / (ss_total + ms_res),
            omega_sq_partial=(ss - df * ms_res) / (ss + (n_total - df) * ms_res),
        )

    df_a, df_b = float(len(levels_a) - 1), float(len(levels_b) - 1)
    nan = math.nan
    terms = (
        row(a, ss_a, df_a),
        row(b, ss_b, df_b),
        row(f"{a}:{b}", ss_ab, df_a * df_b),
        TwoWayTerm(RESIDUAL, ss_within, df_res, ms_res, nan, nan, nan, nan, nan, nan),
    )
    return TwoWayAnovaResult(
        metric=metric,
        groups=groups,
        ss_type=ss_type,
        terms=terms,
        cells=tuple(
            CellStats(
                level_a=c.level_a,
                level_b=c.level_b,
                n=c.n,
                mean=c.shift + c.mean_dev,
                sd=math.sqrt(c.var) if c.n > 1 else nan,
            )
            for c in cells
        ),
        marginals=(
            *_marginals(cells, rel, ref, a, levels_a, "i"),
            *_marginals(cells, rel, ref, b, levels_b, "j"),
        ),
        n=n_total,
        where=where,
    )


def _marginals(
    cells: Sequence[CellMoments],
    rel: np.ndarray,
    ref: float,
    factor: str,
    levels: Sequence[str],
    attr: str,
) -> list[MarginalStats]:
    """Pooled statistics of each level of one factor (``attr``: the cells' index for it)."""
    out = []
    for k, level in enumerate(levels):
        members = [(c, float(r)) for c, r in zip(cells, rel, strict=True) if getattr(c, attr) == k]
        n = sum(c.n for c, _ in members)
        mean_rel = math.fsum(c.n * r for c, r in members) / n
        ss = math.fsum((c.n - 1) * c.var for c, _ in members if c.n > 1) + math.fsum(
            c.n * (r - mean_rel) ** 2 for c, r in members
        )
        out.append(
            MarginalStats(
                factor=factor,
                level=level,
                n=n,
                mean=ref + mean_rel,
                sd=math.sqrt(ss / (n - 1)) if n > 1 else math.nan,
                mean_unweighted=ref + math.fsum(r for _, r in members) / len(members),
            )
        )
    return out


def _finite(cell: CellMoments) -> bool:
    values = (cell.shift, cell.mean_dev, cell.var if cell.n > 1 else 0.0)
    return all(math.isfinite(v) for v in values)


def twoway_anova(
    db: Database,
    *,
    groups: tuple[str, str],
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    ss_type: int = 2,
) -> TwoWayAnovaResult:
    """Two-way ANOVA with interaction of ``metric`` by the two factor columns ``groups``
    (ok, non-warm-up trials unless ``where``/``include_warmup`` say otherwise).

    ``ss_type`` 1, 2 (default) or 3 matches statsmodels' ``anova_lm(typ=...)`` on
    ``ols("y ~ C(G) * C(G2)")`` (Type III on ``C(G, Sum) * C(G2, Sum)``). Every combination of
    levels needs at least one trial.
    """
    if ss_type not in SS_TYPES:
        raise AnalysisError(f"sums of squares type {ss_type!r} is not supported; use 1, 2 or 3")
    names = check_distinct(groups, "--group")
    if len(names) != 2:
        raise AnalysisError(
            f"a two-way ANOVA takes exactly two --group columns, not {len(names)}; "
            "give --group twice (e.g. --group workers --group engine)"
        )
    pair = (names[0], names[1])
    with connect(db) as con:
        sel = select(con, metric=metric, group=pair, where=where, include_warmup=include_warmup)
        cells = cell_moments(con, sel, metric=metric, groups=pair)
        if not cells:
            raise no_trials_error(sel, f"{metric}, {pair[0]} and {pair[1]}")
        if not all(_finite(c) for c in cells):
            finite_check(con, sel, [(metric, "--metric")])  # names NaN/inf values and raises
            raise AnalysisError(
                f"the spread of {metric} overflows a double in the selected trials; exclude "
                f"the extreme values, e.g. --where '{metric}<1e300'"
            )
    return twoway_from_cells(
        cells, metric=metric, groups=pair, ss_type=ss_type, where=sel.where_text
    )
