"""Ordinary least squares of one numeric column on one or more others, per level of ``--by``,
from sufficient statistics computed in DuckDB.

Two queries per analysis, whatever the number of trials:

1. per group: ``n``, each variable's mean (as ``shift + mean of (value - shift)``, the shift a data
   value of the group, so ``1e12 + noise`` loses nothing), the centred cross-products
   ``sum((v_j - mean_j)(v_k - mean_k))`` of y and every x (``X'X`` and ``X'y`` of the centred
   design), and the same sums over average ranks (ties get the mean of their ranks, as in
   scipy) for Spearman's rho;
2. given the coefficients (bound as a parameter), the residuals' sums: ``sum(e^2)`` (RSS), central
   moments 3 and 4 (Jarque-Bera), ``sum((e_t - e_(t-1))^2)`` in trial order (Durbin-Watson) and
   the centred ``e^2`` against each centred x (Breusch-Pagan).

NumPy solves the small ``p x p`` system (in correlation form, with a rank check) and derives
standard errors, t, p-values, confidence intervals, R^2, adjusted R^2, F, log-likelihood, AIC/BIC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    check_column,
    check_distinct,
    connect,
    execute,
    finite_check,
    fmt,
    fmt_p,
    frame_to_latex,
    level_label,
    no_trials_error,
    p_text,
    quote,
    render_table,
    select,
)
from analysis.errors import AnalysisError
from analysis.intervals import t_interval

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

#: Smallest eigenvalue of the x's correlation matrix below which they count as collinear.
COLLINEAR_EIGENVALUE = 1e-10

#: RSS / TSS below which y counts as an exact linear function of the x's (R^2 = 1 in float64).
EXACT_FIT = 1e-20

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


@dataclass(frozen=True)
class Coefficient:
    """One term of the model: estimate, standard error, t test (``df`` residual degrees of
    freedom) and its confidence interval at the result's ``confidence_level``."""

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
        return t_interval(self.estimate, self.std_err, self.df, confidence_level)


@dataclass(frozen=True)
class Correlation:
    """Pearson's r and Spearman's rho of one x with y (two-sided p-values, t with n-2 df, as
    scipy's ``pearsonr`` and ``spearmanr``)."""

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
    small p means the spread of the residuals changes with x).
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
                    "level": dict(zip(self.by, fit.level, strict=True)),
                    **fit.fit_dict(),
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

    def to_frame(self) -> pd.DataFrame:
        """One row per (level, term): the ``by`` columns, ``term`` (``intercept`` or an x),
        ``estimate, std_err, statistic, p_value, ci_low, ci_high``, the term's correlation with
        y (``pearson_r, pearson_p, spearman_rho, spearman_p``; empty for the intercept) and the
        level's fit statistics (:data:`FIT_COLUMNS`), repeated on each of its rows."""
        import pandas as pd

        rows = []
        for fit in self.fits:
            corr = {c.x: c for c in fit.correlations}
            for co in fit.coefficients:
                row: dict[str, Any] = dict(zip(self.by, fit.level, strict=True))
                row.update({c: getattr(co, c) for c in COEFFICIENT_COLUMNS})
                cc = corr.get(co.term)
                for c in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"):
                    row[c] = getattr(cc, c) if cc is not None else math.nan
                row.update(fit.fit_dict())
                rows.append(row)
        columns = [
            *self.by,
            *COEFFICIENT_COLUMNS,
            "pearson_r",
            "pearson_p",
            "spearman_rho",
            "spearman_p",
            *FIT_COLUMNS,
        ]
        return pd.DataFrame(rows, columns=columns)

    def fit_frame(self) -> pd.DataFrame:
        """One row per level: the ``by`` columns and :data:`FIT_COLUMNS`."""
        import pandas as pd

        rows = [
            {**dict(zip(self.by, fit.level, strict=True)), **fit.fit_dict()} for fit in self.fits
        ]
        return pd.DataFrame(rows, columns=[*self.by, *FIT_COLUMNS])

    def correlation_frame(self) -> pd.DataFrame:
        """One row per (level, x): the ``by`` columns and :data:`CORRELATION_COLUMNS` (003's
        Table 1 is this frame with ``by=("file_format",)``)."""
        import pandas as pd

        rows = [
            {
                **dict(zip(self.by, fit.level, strict=True)),
                **{c: getattr(co, c) for c in CORRELATION_COLUMNS},
            }
            for fit in self.fits
            for co in fit.correlations
        ]
        return pd.DataFrame(rows, columns=[*self.by, *CORRELATION_COLUMNS])

    def to_latex(self) -> str:
        """Two ``tabular``s: the coefficients with each x's correlations, then the fit
        statistics and residual checks per level (every column is in :meth:`to_frame`)."""
        coefs = self.to_frame()[[*self.by, *COEFFICIENT_COLUMNS, "pearson_r", "spearman_rho"]]
        fits = self.fit_frame()[
            [
                *self.by,
                "n",
                "r_squared",
                "adj_r_squared",
                "f_statistic",
                "f_p_value",
                "rmse",
                "aic",
                "durbin_watson",
                "jarque_bera_p",
                "breusch_pagan_p",
            ]
        ]
        return frame_to_latex(coefs) + "\n\n" + frame_to_latex(fits)

    def __str__(self) -> str:
        terms = " + ".join(self.term_label(x) for x in self.x)
        where = f"; where {' '.join(self.where)}" if self.where else ""
        pct = f"{self.confidence_level * 100:g}%"
        blocks = [f"OLS of {self.y_label} on {terms}{where}"]
        for fit in self.fits:
            head = level_label(self.by, fit.level)
            lines = [f"\n{head} (n={fit.n})" if head else f"\n(n={fit.n})"]
            lines.append(
                render_table(
                    ["term", "estimate", "std_err", "t", "p", f"{pct} CI"],
                    [
                        (
                            self.term_label(c.term),
                            c.estimate,
                            c.std_err,
                            c.statistic,
                            fmt_p(c.p_value),
                            f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]",
                        )
                        for c in fit.coefficients
                    ],
                )
            )
            lines.append(
                f"R^2 = {fmt(fit.r_squared, 4)}, adj R^2 = {fmt(fit.adj_r_squared, 4)}, "
                f"{_r_text(fit)}, F({fmt(fit.df_model)}, {fmt(fit.df_resid)}) = "
                f"{fmt(fit.f_statistic)}, {p_text(fit.f_p_value)}, rmse = {fmt(fit.rmse)}, "
                f"AIC = {fmt(fit.aic)}"
            )
            lines.append(
                f"residuals: Durbin-Watson = {fmt(fit.durbin_watson, 4)}, Jarque-Bera = "
                f"{fmt(fit.jarque_bera, 4)} ({p_text(fit.jarque_bera_p)}), Breusch-Pagan = "
                f"{fmt(fit.breusch_pagan, 4)} ({p_text(fit.breusch_pagan_p)})"
            )
            lines.append(
                render_table(
                    ["x", "pearson_r", "p", "spearman_rho", "p"],
                    [
                        (
                            self.term_label(c.x),
                            c.pearson_r,
                            fmt_p(c.pearson_p),
                            c.spearman_rho,
                            fmt_p(c.spearman_p),
                        )
                        for c in fit.correlations
                    ],
                )
            )
            blocks.append("\n".join(lines))
        blocks += [f"note: {n}" for n in self.notes]
        return "\n".join(blocks)


# -- SQL ----------------------------------------------------------------------------------------
def _base_ctes(
    sel_where: str, by: Sequence[str], exprs: Sequence[str]
) -> tuple[str, list[str], str]:
    """CTEs ``b`` (group aliases, trial id, variables), ``s`` (shifted) and ``c`` (centred values
    ``c<k>`` and centred average ranks ``r<k>``). Returns (sql, group aliases, window spec)."""
    gs = [f"g{i}" for i in range(len(by))]
    part = f"PARTITION BY {', '.join(gs)}" if gs else ""
    cols = [f"{quote(b)} AS {g}" for b, g in zip(by, gs, strict=True)]
    cols.append("trial_id AS _t")
    cols += [f"{e} AS v{k}" for k, e in enumerate(exprs)]
    k_all = range(len(exprs))
    shifted = ", ".join(f"v{k} - min(v{k}) OVER w AS d{k}, min(v{k}) OVER w AS s{k}" for k in k_all)
    centred = ", ".join(
        f"d{k} - avg(d{k}) OVER w AS c{k}, avg(d{k}) OVER w AS m{k}, "
        f"rank() OVER ({part} ORDER BY v{k}) "
        f"+ (count(*) OVER ({part}{', ' if gs else 'PARTITION BY '}v{k}) - 1) / 2.0 "
        f"- (count(*) OVER w + 1) / 2.0 AS r{k}"
        for k in k_all
    )
    sql = (
        f"b AS (SELECT {', '.join(cols)} FROM {VIEW}{sel_where}), "
        f"s AS (SELECT *, {shifted} FROM b WINDOW w AS ({part})), "
        f"c AS (SELECT *, {centred} FROM s WINDOW w AS ({part}))"
    )
    return sql, gs, part


def _moments(
    con: duckdb.DuckDBPyConnection, ctes: str, gs: Sequence[str], k: int, params: list[Any]
) -> list[tuple]:
    aggs = ["count(*)"]
    aggs += [f"any_value(s{i})" for i in range(k)]
    aggs += [f"any_value(m{i})" for i in range(k)]
    aggs += [f"fsum(c{i} * c{j})" for i in range(k) for j in range(i, k)]
    aggs += [f"fsum(r0 * r{j})" for j in range(k)]
    aggs += [f"fsum(r{j} * r{j})" for j in range(1, k)]
    group = f" GROUP BY {', '.join(gs)}" if gs else ""
    order = f" ORDER BY {', '.join(f'{g} NULLS LAST' for g in gs)}" if gs else ""
    sel_gs = "".join(f"{g}, " for g in gs)
    return execute(
        con, f"WITH {ctes} SELECT {sel_gs}{', '.join(aggs)} FROM c{group}{order}", params
    )


def _residual_sums(
    con: duckdb.DuckDBPyConnection,
    ctes: str,
    gs: Sequence[str],
    p: int,
    betas: list[list[float]],
    params: list[Any],
) -> list[tuple]:
    """Per group (in the order of :func:`_moments`): RSS, sum of centred e^3 and e^4, the
    Durbin-Watson numerator, sum of centred (e^2)^2 and sum(c_xj * centred e^2) per x."""
    gi = f"dense_rank() OVER (ORDER BY {', '.join(f'{g} NULLS LAST' for g in gs)})" if gs else "1"
    fitted = " + ".join(f"coef.B[gi][{j}] * c{j}" for j in range(1, p + 1))
    xs = "".join(f", c{j}" for j in range(1, p + 1))
    sql = (
        f"WITH coef AS (SELECT ?::DOUBLE[][] AS B), {ctes}, "
        f"i AS (SELECT *, {gi} AS gi FROM c), "
        f"e AS (SELECT gi, _t{xs}, c0 - ({fitted}) AS e FROM i CROSS JOIN coef), "
        "f AS (SELECT *, e - avg(e) OVER (PARTITION BY gi) AS ec, "
        "e * e - avg(e * e) OVER (PARTITION BY gi) AS uc, "
        "e - lag(e) OVER (PARTITION BY gi ORDER BY _t) AS de FROM e) "
        "SELECT gi, fsum(e * e), fsum(ec * ec), fsum(ec * ec * ec), fsum(ec * ec * ec * ec), "
        "fsum(de * de), fsum(uc * uc)"
        + "".join(f", fsum(c{j} * uc)" for j in range(1, p + 1))
        + " FROM f GROUP BY gi ORDER BY gi"
    )
    return execute(con, sql, [betas, *params])


# -- statistics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Solved:
    """Per-group solution of the centred normal equations."""

    n: int
    means: np.ndarray  # y, x1..xp
    s: np.ndarray  # centred cross-products, (p+1) x (p+1), index 0 = y
    ranks: np.ndarray  # rank cross-products: [r0 r0, r0 r1..r0 rp], [r1 r1..rp rp]
    xtx_inv: np.ndarray
    beta: np.ndarray


def _level_text(by: Sequence[str], level: Sequence[Any]) -> str:
    if not by:
        return "the selected trials"
    return "level " + level_label(by, level)


def _solve(
    row: Sequence[Any], *, k: int, by: Sequence[str], y: str, x: Sequence[str]
) -> tuple[tuple[Any, ...], _Solved]:
    import numpy as np

    g = len(by)
    level = tuple(row[:g])
    rest = list(row[g:])
    n = int(rest.pop(0))
    shifts = np.array([float(rest.pop(0)) for _ in range(k)])
    mean_devs = np.array([float(rest.pop(0)) for _ in range(k)])
    s = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            s[i, j] = s[j, i] = float(rest.pop(0))
    r0 = np.array([float(rest.pop(0)) for _ in range(k)])
    rjj = np.array([float(rest.pop(0)) for _ in range(1, k)])
    p = k - 1
    where = _level_text(by, level)
    if n < p + 2:
        raise AnalysisError(
            f"{where} has {n} trial{'s' if n != 1 else ''} with {y} and every x, but a fit with "
            f"{p} x{'s' if p > 1 else ''} and an intercept needs at least {p + 2}; run more "
            "trials, loosen --where, or drop --by"
        )
    if s[0, 0] <= 0:
        raise AnalysisError(
            f"--y {y} has zero variance in {where} (every value equal), so R^2 and the tests "
            "are undefined; check the data or pick another --y"
        )
    for j, name in enumerate(x, start=1):
        if s[j, j] <= 0:
            raise AnalysisError(
                f"--x {name} has zero variance in {where} (every value equal), so its slope is "
                "undefined; pick an x that varies, or drop that --by column"
            )
    sxx = s[1:, 1:]
    d = 1.0 / np.sqrt(np.diag(sxx))
    corr = sxx * np.outer(d, d)
    eigval, eigvec = np.linalg.eigh(corr)
    if eigval[0] < COLLINEAR_EIGENVALUE:
        involved = [name for name, w in zip(x, eigvec[:, 0], strict=True) if abs(w) > 0.1]
        raise AnalysisError(
            f"--x {', '.join(involved)} are collinear in {where} (one is a linear function of "
            "the others), so their coefficients cannot be separated; drop one of them"
        )
    xtx_inv = np.linalg.inv(corr) * np.outer(d, d)
    beta = xtx_inv @ s[1:, 0]
    ranks = np.concatenate([r0, rjj])
    return level, _Solved(n, shifts + mean_devs, s, ranks, xtx_inv, beta)


def _r_text(fit: RegressionFit) -> str:
    """``r = <Pearson's r>`` (signed, as beside it) for one x; ``multiple R = sqrt(R^2)``
    for several (unsigned: no one x gives it a sign)."""
    if len(fit.correlations) == 1:
        return f"r = {fmt(fit.correlations[0].pearson_r, 4)}"
    return f"multiple R = {fmt(fit.r, 4)}"


def _t_p(statistic: float, df: float) -> float:
    from scipy import stats

    return float(2 * stats.t.sf(abs(statistic), df))


def _correlation_p(r: float, n: int) -> float:
    """Two-sided p of H0: rho = 0 from t = r sqrt((n-2)/(1-r^2)), t with n-2 df."""
    if abs(r) >= 1.0:
        return 0.0
    return _t_p(r * math.sqrt((n - 2) / (1.0 - r * r)), n - 2)


def _fit(
    level: tuple[Any, ...],
    sol: _Solved,
    resid: Sequence[Any],
    *,
    by: Sequence[str],
    y: str,
    x: Sequence[str],
    confidence_level: float,
) -> RegressionFit:
    import numpy as np
    from scipy import stats

    n, p = sol.n, len(x)
    rss, m2, m3, m4, dw_num, uu = (float(v) for v in resid[1:7])
    bp_g = np.array([float(v) for v in resid[7 : 7 + p]])
    tss = float(sol.s[0, 0])
    if rss <= EXACT_FIT * tss:
        raise AnalysisError(
            f"{y} is an exact linear function of {', '.join(x)} in {_level_text(by, level)} "
            "(all residuals zero), so standard errors and tests are undefined; check the data"
        )
    df_resid = float(n - p - 1)
    sigma2 = rss / df_resid
    cov = sigma2 * sol.xtx_inv
    x_means = sol.means[1:]
    intercept = float(sol.means[0] - sol.beta @ x_means)
    var_b0 = sigma2 / n + float(x_means @ cov @ x_means)
    estimates = [intercept, *(float(b) for b in sol.beta)]
    std_errs = [math.sqrt(var_b0), *(math.sqrt(float(cov[j, j])) for j in range(p))]
    coefficients = []
    for term, est, se in zip(("intercept", *x), estimates, std_errs, strict=True):
        t = est / se
        low, high = t_interval(est, se, df_resid, confidence_level)
        coefficients.append(
            Coefficient(
                term=term,
                estimate=est,
                std_err=se,
                statistic=t,
                p_value=_t_p(t, df_resid),
                ci_low=low,
                ci_high=high,
                df=df_resid,
            )
        )
    ess = float(sol.beta @ sol.s[1:, 1:] @ sol.beta)
    r_squared = 1.0 - rss / tss
    f_statistic = (ess / p) / sigma2
    log_likelihood = -n / 2 * (math.log(2 * math.pi) + math.log(rss / n) + 1)
    skew = (m3 / n) / (m2 / n) ** 1.5
    kurtosis = (m4 / n) / (m2 / n) ** 2
    jb = n / 6 * (skew**2 + (kurtosis - 3) ** 2 / 4)
    if uu > 0:
        bp = n * float(bp_g @ sol.xtx_inv @ bp_g) / uu
        bp_p = float(stats.chi2.sf(bp, p))
    else:  # every squared residual equal: no spread to explain
        bp, bp_p = 0.0, 1.0
    correlations = []
    for j, name in enumerate(x, start=1):
        r = float(sol.s[0, j] / math.sqrt(sol.s[0, 0] * sol.s[j, j]))
        # ranks: [r0 r0, r0 r1 .. r0 rp, r1 r1 .. rp rp]
        rho = float(sol.ranks[j] / math.sqrt(sol.ranks[0] * sol.ranks[p + j]))
        correlations.append(
            Correlation(
                x=name,
                n=n,
                pearson_r=r,
                pearson_p=_correlation_p(r, n),
                spearman_rho=rho,
                spearman_p=_correlation_p(rho, n),
            )
        )
    return RegressionFit(
        level=level,
        n=n,
        coefficients=tuple(coefficients),
        correlations=tuple(correlations),
        r=math.sqrt(max(r_squared, 0.0)),
        r_squared=r_squared,
        adj_r_squared=1.0 - (1.0 - r_squared) * (n - 1) / df_resid,
        f_statistic=f_statistic,
        f_p_value=float(stats.f.sf(f_statistic, p, df_resid)),
        df_model=float(p),
        df_resid=df_resid,
        rmse=math.sqrt(sigma2),
        log_likelihood=log_likelihood,
        aic=-2 * log_likelihood + 2 * (p + 1),
        bic=-2 * log_likelihood + math.log(n) * (p + 1),
        durbin_watson=dw_num / rss,
        jarque_bera=jb,
        jarque_bera_p=float(stats.chi2.sf(jb, 2)),
        skew=skew,
        kurtosis=kurtosis,
        breusch_pagan=bp,
        breusch_pagan_p=bp_p,
    )


def regress(
    db: Database,
    *,
    y: str,
    x: Sequence[str] | str,
    by: Sequence[str] | str = (),
    log_x: bool = False,
    log_y: bool = False,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    confidence_level: float = 0.95,
) -> RegressionResult:
    """OLS of ``y`` on the ``x`` columns with an intercept, one fit per level of ``by``.

    ``log_x`` / ``log_y`` take natural logs first (values <= 0 are refused). Trials missing y or
    any x are left out. Each level needs more trials than coefficients, variance in y and every
    x, and x's that are not collinear; otherwise :class:`AnalysisError` says which level fails.
    """
    if not 0 < confidence_level < 1:
        raise AnalysisError(f"confidence level {confidence_level} must be between 0 and 1")
    x = check_distinct(x, "--x")
    by = check_distinct(by, "--by")
    if not x:
        raise AnalysisError("no --x given; name at least one numeric column, e.g. --x workers")
    if y in x:
        raise AnalysisError(f"--y {y} is also an --x; a column cannot explain itself")
    with connect(db) as con:
        sel = select(con, metric=None, group=by, group_option="--by", where=where,
                     include_warmup=include_warmup)  # fmt: skip
        check_column(sel.columns, y, "--y", numeric=True)
        for name in x:
            check_column(sel.columns, name, "--x", numeric=True)
        positive = [*(x if log_x else ()), *((y,) if log_y else ())]
        n = finite_check(con, sel, [(y, "--y"), *((c, "--x") for c in x)], positive=positive)
        if n == 0:
            raise no_trials_error(sel, f"{y} and {', '.join(x)}")
        exprs = []
        for name, logged in ((y, log_y), *((c, log_x) for c in x)):
            e = f"CAST({quote(name)} AS DOUBLE)"
            exprs.append(f"ln({e})" if logged else e)
        not_null = [f"{quote(c)} IS NOT NULL" for c in (y, *x)]
        ctes, gs, _ = _base_ctes(sel.where_and(*not_null), by, exprs)
        rows = _moments(con, ctes, gs, len(exprs), sel.params)
        solved = [_solve(row, k=len(exprs), by=by, y=y, x=x) for row in rows]
        betas = [[float(b) for b in sol.beta] for _, sol in solved]
        resid = _residual_sums(con, ctes, gs, len(x), betas, sel.params)
    if len(resid) != len(solved):  # the two passes must see the same groups
        raise RuntimeError("residual pass found a different set of groups")
    fits = tuple(
        _fit(level, sol, res, by=by, y=y, x=x, confidence_level=confidence_level)
        for (level, sol), res in zip(solved, resid, strict=True)
    )
    return RegressionResult(
        y=y,
        x=x,
        by=by,
        log_x=log_x,
        log_y=log_y,
        confidence_level=confidence_level,
        fits=fits,
        where=sel.where_text,
    )
