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
``1e12 + noise`` keep their precision; magnitudes beyond ``2**400`` or below ``2**-400`` are
divided by a power of two first (exact; :func:`analysis.anova_checks.metric_scale`), so F, p and
the effect sizes of 1e300 or 1e-300 data are those of the unit data, means and sds are multiplied
back, and the sums of squares (whose squares would leave a double's range) are given of the
scaled metric (``ss_scale``). The sums of squares live in :mod:`analysis.twoway_ss`, the text,
LaTeX and tables in :mod:`analysis.twoway_text`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from analysis import twoway_text
from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    check_distinct,
    connect,
    execute,
    finite_check,
    no_trials_error,
    quote,
    select,
)
from analysis.errors import AnalysisError
from analysis.twoway_cells import (  # noqa: F401  (re-exported)
    UNCHECKED_NOTE,
    CellMoments,
    cell_moments,
    cell_notes,
    check_cells,
)
from analysis.twoway_ss import term_ss
from analysis.twoway_text import (  # noqa: F401  (re-exported)
    CELL_COLUMNS,
    MARGINAL_COLUMNS,
    TERM_COLUMNS,
)

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

    from analysis.tables import Table

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
    #: sums of squares and mean squares are of ``metric / ss_scale`` (1 unless the metric's
    #: squares leave a double's range: values beyond 2**400 or below 2**-400)
    ss_scale: float = 1.0
    notes: tuple[str, ...] = ()

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
            "ss_scale": self.ss_scale,
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        """The ANOVA table: one row per term, columns :data:`TERM_COLUMNS`."""
        return twoway_text.term_frame(self)

    def cell_frame(self) -> pd.DataFrame:
        """One row per cell, columns :data:`CELL_COLUMNS` (``level_a`` is a level of
        ``groups[0]``, ``level_b`` of ``groups[1]``)."""
        return twoway_text.cell_frame(self)

    def marginal_frame(self) -> pd.DataFrame:
        """One row per level of each factor, columns :data:`MARGINAL_COLUMNS`."""
        return twoway_text.marginal_frame(self)

    def tables(self) -> list[Table]:
        """``terms`` (main), ``cells``, ``marginals``: every statistic of the text."""
        return twoway_text.tables(self)

    def to_latex(self) -> str:
        """Two ``tabular``s: the ANOVA table, then the cell means; the notes below."""
        return twoway_text.to_latex(self)

    def __str__(self) -> str:
        return twoway_text.render(self)


def twoway_from_cells(
    cells: Sequence[CellMoments],
    *,
    metric: str,
    groups: tuple[str, str],
    ss_type: int = 2,
    where: tuple[str, ...] = (),
    scale: float = 1.0,
) -> TwoWayAnovaResult:
    """The ANOVA table, cell and marginal statistics from per-cell moments of ``metric /
    scale``: means and sds are multiplied back, the sums of squares stay of the scaled metric
    (``ss_scale``)."""
    import numpy as np

    from analysis.intervals import f_sf

    a, b = groups
    levels_a, levels_b = check_cells(cells, groups=groups, metric=metric)
    n_total = sum(c.n for c in cells)
    ss_within = math.fsum((c.n - 1) * c.var for c in cells if c.n > 1)
    if ss_within == 0:
        raise AnalysisError(
            f"every {a} x {b} cell has zero variance in {metric} (all values equal within each "
            "cell), so the F statistics are undefined; check the data or pick another --metric"
        )
    ref = cells[0].shift
    rel = np.array([(c.shift - ref) + c.mean_dev for c in cells])
    ss_a, ss_b, ss_ab, ss_between = term_ss(cells, rel, len(levels_a), len(levels_b), ss_type)
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
            p_value=f_sf(statistic, df, df_res),
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
                mean=(c.shift + c.mean_dev) * scale,
                sd=math.sqrt(c.var) * scale if c.n > 1 else nan,
            )
            for c in cells
        ),
        marginals=tuple(
            replace(
                m, mean=m.mean * scale, sd=m.sd * scale, mean_unweighted=m.mean_unweighted * scale
            )  # fmt: skip
            for m in (
                *_marginals(cells, rel, ref, a, levels_a, "i"),
                *_marginals(cells, rel, ref, b, levels_b, "j"),
            )
        ),
        n=n_total,
        where=where,
        ss_scale=scale,
        notes=cell_notes(cells, groups),
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
        scale = _checked_scale(con, sel, metric=metric)
        cells = cell_moments(con, sel, metric=metric, groups=pair, scale=scale)
        if not cells:
            raise no_trials_error(sel, f"{metric}, {pair[0]} and {pair[1]}")
    return twoway_from_cells(
        cells, metric=metric, groups=pair, ss_type=ss_type, where=sel.where_text, scale=scale
    )


def _checked_scale(con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str) -> float:
    """:func:`analysis.data.finite_check`'s rule on ``metric`` (raising with its counts when a
    value is NaN or infinite) and :func:`analysis.anova_checks.metric_scale`, from one scan:
    the largest magnitude and the count of non-finite values together."""
    from analysis.query import power_of_two_scale

    x = f"CAST({quote(metric)} AS DOUBLE)"
    where_sql = sel.where_and(f"{quote(metric)} IS NOT NULL")
    big, bad = execute(
        con,
        f"SELECT max(abs({x})), count(*) FILTER (WHERE NOT isfinite({x})) FROM {VIEW}{where_sql}",
        sel.params,
    )[0]
    if bad:
        finite_check(con, sel, [(metric, "--metric")])  # names NaN/inf values and raises
    return power_of_two_scale(big)
