"""The result objects of :func:`analysis.regress.regress`: one fit per ``--by`` level, its
coefficients and correlations, as dicts, frames and :class:`~analysis.tables.Table`s.

Text and LaTeX rendering live in :mod:`analysis.regress_text`; the statistics in
:mod:`analysis.regress`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.intervals import t_interval
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

COEFFICIENT_COLUMNS = ("term", "estimate", "std_err", "statistic", "p_value", "ci_low", "ci_high")
FIT_COLUMNS = (
    "n",
    "r",
    "r_squared",
    "adj_r_squared",
    "f_statistic",
    "f_p_value",
    "df_model",
    "df_resid",
    "rmse",
    "log_likelihood",
    "aic",
    "bic",
    "durbin_watson",
    "jarque_bera",
    "jarque_bera_p",
    "skew",
    "kurtosis",
    "breusch_pagan",
    "breusch_pagan_p",
)
CORRELATION_COLUMNS = ("x", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p")
#: the correlation columns a term's row carries (empty for the intercept)
TERM_CORRELATION_COLUMNS = ("pearson_r", "pearson_p", "spearman_rho", "spearman_p")


@dataclass(frozen=True)
class Coefficient:
    """One term of the model: estimate, standard error, t test (``df`` residual degrees of
    freedom) and its confidence interval at the result's ``confidence_level``. Without residual
    degrees of freedom (an exact fit) everything but the estimate is NaN."""

    term: str
    estimate: float
    std_err: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    df: float

    def confidence_interval(self, confidence_level: float = 0.95) -> tuple[float, float]:
        """Two-sided t interval of the estimate at ``confidence_level`` (no refit)."""
        from analysis.options import check_confidence

        level = check_confidence(confidence_level)
        if not self.df > 0 or math.isnan(self.std_err):
            return math.nan, math.nan
        return t_interval(self.estimate, self.std_err, self.df, level)


@dataclass(frozen=True)
class Correlation:
    """Pearson's r and Spearman's rho of one x with y (two-sided p-values, t with n-2 df, as
    scipy's ``pearsonr`` and ``spearmanr``; NaN with 2 trials)."""

    x: str
    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float


@dataclass(frozen=True)
class RegressionFit:
    """The OLS fit of one ``--by`` level (``level`` holds its values, in ``by`` order).

    ``r`` is the multiple correlation sqrt(R^2) (>= 0); the text shows, for one x, Pearson's
    r (signed) instead, and for several ``multiple R``. Residual checks: ``durbin_watson``
    (residuals in trial order: about 2 when successive trials are uncorrelated),
    ``jarque_bera`` (normality, from the residuals' skew and kurtosis; chi^2 with 2 df) and
    ``breusch_pagan`` (Koenker's studentized form: n R^2 of e^2 on the x's; chi^2 with p df;
    small p means the spread of the residuals changes with x). ``exact``: y is a linear
    function of the x's (no residual degrees of freedom, or residuals zero to rounding):
    R^2 = 1 and the statistics that need a residual variance are NaN, as ``notes`` says.
    """

    level: tuple[Any, ...]
    n: int
    coefficients: tuple[Coefficient, ...]
    correlations: tuple[Correlation, ...]
    r: float
    r_squared: float
    adj_r_squared: float
    f_statistic: float
    f_p_value: float
    df_model: float
    df_resid: float
    rmse: float
    log_likelihood: float
    aic: float
    bic: float
    durbin_watson: float
    jarque_bera: float
    jarque_bera_p: float
    skew: float
    kurtosis: float
    breusch_pagan: float
    breusch_pagan_p: float
    exact: bool = False
    notes: tuple[str, ...] = ()

    def fit_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in FIT_COLUMNS}


@dataclass(frozen=True)
class RegressionResult:
    """OLS of ``y`` on ``x`` (a constant added), one :class:`RegressionFit` per ``by`` level."""

    y: str
    x: tuple[str, ...]
    by: tuple[str, ...]
    log_x: bool
    log_y: bool
    confidence_level: float
    fits: tuple[RegressionFit, ...]
    where: tuple[str, ...]
    #: what was held fixed or pooled on purpose, one sentence each
    notes: tuple[str, ...] = ()

    def term_label(self, term: str) -> str:
        if term == "intercept" or not self.log_x:
            return term
        return f"ln({term})"

    @property
    def y_label(self) -> str:
        return f"ln({self.y})" if self.log_y else self.y

    def _level(self, fit: RegressionFit) -> dict[str, Any]:
        return dict(zip(self.by, fit.level, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "y": self.y,
            "x": list(self.x),
            "by": list(self.by),
            "log_x": self.log_x,
            "log_y": self.log_y,
            "confidence_level": self.confidence_level,
            "where": list(self.where),
            "notes": list(self.notes),
            "fits": [
                {
                    "level": self._level(fit),
                    **fit.fit_dict(),
                    "exact": fit.exact,
                    "notes": list(fit.notes),
                    "coefficients": [
                        {c: getattr(co, c) for c in COEFFICIENT_COLUMNS} for co in fit.coefficients
                    ],
                    "correlations": [
                        {c: getattr(co, c) for c in CORRELATION_COLUMNS} for co in fit.correlations
                    ],
                }
                for fit in self.fits
            ],
        }

    def _term_rows(self) -> list[tuple[RegressionFit, dict[str, Any]]]:
        """(fit, row) per (level, term): the ``by`` columns, :data:`COEFFICIENT_COLUMNS` and the
        term's correlations with y (NaN for the intercept)."""
        rows = []
        for fit in self.fits:
            corr = {c.x: c for c in fit.correlations}
            for co in fit.coefficients:
                row = self._level(fit)
                row.update({c: getattr(co, c) for c in COEFFICIENT_COLUMNS})
                cc = corr.get(co.term)
                for c in TERM_CORRELATION_COLUMNS:
                    row[c] = getattr(cc, c) if cc is not None else math.nan
                rows.append((fit, row))
        return rows

    def to_frame(self) -> pd.DataFrame:
        """One row per (level, term): the ``by`` columns, ``term`` (``intercept`` or an x),
        ``estimate, std_err, statistic, p_value, ci_low, ci_high``, the term's correlation with
        y (``pearson_r, pearson_p, spearman_rho, spearman_p``; empty for the intercept) and the
        level's fit statistics (:data:`FIT_COLUMNS`), repeated on each of its rows."""
        import pandas as pd

        rows = [{**row, **fit.fit_dict()} for fit, row in self._term_rows()]
        columns = [*self.by, *COEFFICIENT_COLUMNS, *TERM_CORRELATION_COLUMNS, *FIT_COLUMNS]
        return pd.DataFrame(rows, columns=columns)

    def coefficient_frame(self) -> pd.DataFrame:
        """One row per (level, term): the ``by`` columns, :data:`COEFFICIENT_COLUMNS`, the term's
        correlations with y and ``confidence_level`` (of ``ci_low``/``ci_high``)."""
        import pandas as pd

        rows = [{**row, "confidence_level": self.confidence_level} for _, row in self._term_rows()]
        columns = [*self.by, *COEFFICIENT_COLUMNS, *TERM_CORRELATION_COLUMNS, "confidence_level"]
        return pd.DataFrame(rows, columns=columns)

    def fit_frame(self, *, notes: bool = False) -> pd.DataFrame:
        """One row per level: the ``by`` columns and :data:`FIT_COLUMNS`; with ``notes``, also
        ``exact`` and ``note`` (the result's notes and the level's, joined by ``; ``)."""
        import pandas as pd

        rows = []
        for fit in self.fits:
            row = {**self._level(fit), **fit.fit_dict()}
            if notes:
                row["exact"] = fit.exact
                row["note"] = "; ".join((*self.notes, *fit.notes))
            rows.append(row)
        extra = ["exact", "note"] if notes else []
        return pd.DataFrame(rows, columns=[*self.by, *FIT_COLUMNS, *extra])

    def correlation_frame(self) -> pd.DataFrame:
        """One row per (level, x): the ``by`` columns and :data:`CORRELATION_COLUMNS` (003's
        Table 1 is this frame with ``by=("file_format",)``)."""
        import pandas as pd

        rows = [
            {**self._level(fit), **{c: getattr(co, c) for c in CORRELATION_COLUMNS}}
            for fit in self.fits
            for co in fit.correlations
        ]
        return pd.DataFrame(rows, columns=[*self.by, *CORRELATION_COLUMNS])

    def tables(self) -> list[Table]:
        """``coefficients`` (main: one row per level and term, with each x's correlations with
        y) and ``fit`` (one row per level: R^2, F, rmse, AIC/BIC, residual checks, notes)."""
        pct = f"{self.confidence_level * 100:g}%"
        return [
            Table(
                "coefficients",
                self.coefficient_frame(),
                f"OLS of {self.y_label}: coefficients with {pct} intervals, each x's Pearson "
                "and Spearman correlation with y",
            ),
            Table(
                "fit",
                self.fit_frame(notes=True),
                "Fit statistics and residual checks (Durbin-Watson, Jarque-Bera, Breusch-Pagan)",
            ),
        ]

    def to_latex(self) -> str:
        from analysis.regress_text import latex

        return latex(self)

    def __str__(self) -> str:
        from analysis.regress_text import text

        return text(self)
