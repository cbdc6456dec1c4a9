"""Ordinary least squares of one numeric column on one or more others, per level of ``--by``.

Three queries per analysis, whatever the number of trials:

1. per group: ``n``, each variable's mean (as ``shift + mean of (value - shift)``, the shift a data
   value of the group, so ``1e12 + noise`` loses nothing), the largest centred value of each
   variable (its scale) and the cross-products of average ranks (ties get the mean of their
   ranks, as in scipy) for Spearman's rho;
2. the centred values, streamed in chunks into a QR factorisation (Householder, NumPy) of the
   design ``[1, x_1/s_1 .. x_p/s_p, y/s_y]``, each column divided by a power of two near its
   largest value (exact; no value is squared before scaling, so magnitudes up to 1e300 give
   finite statistics). The design is never squared (no normal equations): a degree-10
   polynomial (NIST's Filip) keeps 8 digits, Longley and Wampler 1-5 keep 10 or more. Memory
   stays ``(p+2)^2`` per group, whatever the number of trials;
3. given the coefficients (bound as a parameter), the residuals' sums, in scaled units: central
   moments 3 and 4 (Jarque-Bera), ``sum((e_t - e_(t-1))^2)`` in trial order (Durbin-Watson) and
   the centred ``e^2`` against each centred x (Breusch-Pagan).

A design whose columns are collinear (rank deficient) is refused naming them. An exact fit (as
many trials as coefficients, or residuals zero to rounding) gives its coefficients and R^2 = 1;
standard errors, tests and intervals are NaN, and a note says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import (
    Database,
    Filter,
    check_column,
    check_distinct,
    connect,
    finite_check,
    level_label,
    no_trials_error,
    quote,
    select,
)
from analysis.errors import AnalysisError
from analysis.intervals import chi2_sf, f_sf, t_interval, t_sf
from analysis.options import CONFIDENCE, check_confidence
from analysis.query import Sql, moments
from analysis.regress_result import (
    COEFFICIENT_COLUMNS,
    CORRELATION_COLUMNS,
    FIT_COLUMNS,
    Coefficient,
    Correlation,
    RegressionFit,
    RegressionResult,
)
from analysis.regress_sql import base_ctes, qr_factors, rank_sums, residual_sums

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "COEFFICIENT_COLUMNS",
    "COLLINEAR",
    "CORRELATION_COLUMNS",
    "EXACT_FIT",
    "FIT_COLUMNS",
    "Coefficient",
    "Correlation",
    "RegressionFit",
    "RegressionResult",
    "regress",
]

#: Smallest singular value of the column-normalised design (intercept and scaled, centred x's),
#: relative to its largest, below which the x's count as collinear: 12 of float64's 16 digits
#: would be lost. NIST's Filip (a degree-10 polynomial) is at 2.6e-10 and is fitted.
COLLINEAR = 1e-12

#: RSS / TSS below which y counts as an exact linear function of the x's (R^2 = 1 in float64).
EXACT_FIT = 1e-20


# -- statistics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    """One group's moments: ``shifts + mean_devs`` are the means of y, x_1..x_p; ``exps`` the
    powers of two that scale their centred values below 1."""

    level: tuple[Any, ...]
    n: int
    shifts: tuple[float, ...]
    mean_devs: tuple[float, ...]
    exps: tuple[int, ...]
    ranks: tuple[float, ...]  # [r0 r0, r0 r1 .. r0 rp, r1 r1 .. rp rp]


#: The smallest column exponent of the scaling: 2^1021 is the largest power of two whose
#: reciprocal's reciprocal stays normal (``math.ldexp(1.0, 1021)`` is finite).
MIN_EXP = -1021


def _level_text(by: Sequence[str], level: Sequence[Any]) -> str:
    if not by:
        return "the selected trials"
    return "level " + level_label(by, level)


def _group(row: Sequence[Any], *, k: int, by: Sequence[str], y: str, x: Sequence[str]) -> _Group:
    g = len(by)
    level = tuple(row[:g])
    n = int(row[g])
    rest = [float(v) for v in row[g + 1 :]]
    shifts, mean_devs, maxabs, ranks = rest[:k], rest[k : 2 * k], rest[2 * k : 3 * k], rest[3 * k :]
    p = k - 1
    where = _level_text(by, level)
    if n < p + 1:
        raise AnalysisError(
            f"{where} has {n} trial{'s' if n != 1 else ''} with {y} and every x, but an intercept "
            f"and {p} slope{'s' if p > 1 else ''} need at least {p + 1}; run more trials, loosen "
            "--where, or drop --by"
        )
    if not maxabs[0] > 0:
        raise AnalysisError(
            f"--y {y} has zero variance in {where} (every value equal), so R^2 and the tests "
            "are undefined; check the data or pick another --y"
        )
    for name, m in zip(x, maxabs[1:], strict=True):
        if not m > 0:
            raise AnalysisError(
                f"--x {name} has zero variance in {where} (every value equal), so its slope is "
                "undefined; pick an x that varies, or drop that --by column"
            )
    # each column over 2^exp; an exponent below MIN_EXP (subnormal values, 1e-316) is raised to
    # it, so the scale 2^-exp stays a finite double (2^1049 overflowed)
    exps = tuple(max(math.frexp(m)[1], MIN_EXP) for m in maxabs)
    return _Group(level, n, tuple(shifts), tuple(mean_devs), exps, tuple(ranks))


@dataclass(frozen=True)
class _Solved:
    """A group's least-squares solution in scaled units (y over 2^exps[0], x_j over 2^exps[j])."""

    beta: np.ndarray  # centred intercept, slopes
    rinv: np.ndarray  # inverse of R's (p+1) x (p+1) block: Cov(beta) = sigma^2 rinv rinv'
    rss: float
    ess: float
    tss: float
    gram: np.ndarray  # centred cross-products of x_1..x_p, y (scaled)


def _solve(r: np.ndarray, grp: _Group, *, by: Sequence[str], x: Sequence[str]) -> _Solved:
    import numpy as np

    p = len(x)
    r11 = r[: p + 1, : p + 1]
    norms = np.linalg.norm(r11, axis=0)
    _, sv, vt = np.linalg.svd(r11 / norms)
    if not sv[-1] > COLLINEAR * sv[0]:
        involved = [name for name, w in zip(x, vt[-1, 1:], strict=True) if abs(w) > 0.1]
        raise AnalysisError(
            f"--x {', '.join(involved or x)} are collinear in {_level_text(by, grp.level)} (one "
            "is a linear function of the others), so their coefficients cannot be separated; "
            "drop one of them"
        )
    rinv = _upper_inverse(r11)
    sub = r[1:, 1:]
    return _Solved(
        beta=rinv @ r[: p + 1, p + 1],
        rinv=rinv,
        rss=float(r[p + 1, p + 1] ** 2),
        ess=float(np.sum(r[1 : p + 1, p + 1] ** 2)),
        tss=float(np.sum(r[1:, p + 1] ** 2)),
        gram=sub.T @ sub,
    )


def _upper_inverse(r: np.ndarray) -> np.ndarray:
    """The inverse of the upper-triangular ``r`` by back substitution (``scipy.linalg``'s
    ``solve_triangular(r, I)`` without importing scipy.linalg, about 0.2 s)."""
    import numpy as np

    m = len(r)
    inv = np.zeros((m, m))
    for j in range(m):
        for i in range(j, -1, -1):
            rhs = (1.0 if i == j else 0.0) - float(r[i, i + 1 : j + 1] @ inv[i + 1 : j + 1, j])
            inv[i, j] = rhs / r[i, i]
    return inv


def _t_p(statistic: float, df: float) -> float:
    return 2 * t_sf(abs(statistic), df)


def _correlation_p(r: float, n: int) -> float:
    """Two-sided p of H0: rho = 0 from t = r sqrt((n-2)/(1-r^2)), t with n-2 df (NaN for n=2)."""
    if n <= 2 or math.isnan(r):
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    return _t_p(r * math.sqrt((n - 2) / (1.0 - r * r)), n - 2)


def _correlations(grp: _Group, sol: _Solved, x: Sequence[str]) -> tuple[Correlation, ...]:
    p, out = len(x), []
    for j, name in enumerate(x):
        r = float(sol.gram[j, p] / math.sqrt(sol.gram[j, j] * sol.gram[p, p]))
        # ranks: [r0 r0, r0 r1 .. r0 rp, r1 r1 .. rp rp]
        rr = grp.ranks
        rho = float(rr[j + 1] / math.sqrt(rr[0] * rr[p + 1 + j]))
        out.append(Correlation(name, grp.n, r, _correlation_p(r, grp.n), rho,
                               _correlation_p(rho, grp.n)))  # fmt: skip
    return tuple(out)


def _fit(
    grp: _Group,
    sol: _Solved,
    resid: Sequence[Any],
    *,
    by: Sequence[str],
    y: str,
    x: Sequence[str],
    confidence_level: float,
) -> RegressionFit:
    import numpy as np

    n, p, nan = grp.n, len(x), math.nan
    ey, ex = grp.exps[0], grp.exps[1:]
    df_resid = float(n - p - 1)
    exact = df_resid == 0 or sol.rss <= EXACT_FIT * sol.tss
    # intercept of the original units, in y's scaled units: mean_y + a0 - sum b_j mean_j
    means = [math.ldexp(s, -e) + math.ldexp(m, -e)
             for s, m, e in zip(grp.shifts, grp.mean_devs, grp.exps, strict=True)]  # fmt: skip
    grad = np.array([1.0, *(-m for m in means[1:])])
    b0 = means[0] + float(sol.beta[0]) + float(grad[1:] @ sol.beta[1:])
    scaled = [b0, *(float(b) for b in sol.beta[1:])]
    unscale = [ey, *(ey - e for e in ex)]
    sigma2 = nan if exact else sol.rss / df_resid
    variances = [float(np.sum((grad @ sol.rinv) ** 2)),
                 *(float(np.sum(sol.rinv[j] ** 2)) for j in range(1, p + 1))]  # fmt: skip
    coefficients = []
    for term, est, v, e in zip(("intercept", *x), scaled, variances, unscale, strict=True):
        se = math.sqrt(sigma2 * v)
        estimate, std_err = math.ldexp(est, e), math.ldexp(se, e)
        low, high = (nan, nan) if exact else t_interval(estimate, std_err, df_resid,
                                                        confidence_level)  # fmt: skip
        t = nan if exact else est / se
        p_value = nan if exact else _t_p(t, df_resid)
        coefficients.append(Coefficient(term, estimate, std_err, t, p_value, low, high, df_resid))
    correlations = _correlations(grp, sol, x)
    notes: tuple[str, ...] = ()
    if exact:
        why = ("as many trials as coefficients: no residual degrees of freedom" if df_resid == 0
               else "all residuals zero to rounding")  # fmt: skip
        notes = (
            f"exact fit in {_level_text(by, grp.level)}: {y} is a linear function of "
            f"{', '.join(x)} ({why}), so standard errors, t, p-values, intervals and residual "
            "checks are undefined (shown as -)",
        )
        r_squared = 1.0
        adj = 1.0 if df_resid > 0 else nan
        return RegressionFit(
            level=grp.level, n=n, coefficients=tuple(coefficients), correlations=correlations,
            r=1.0, r_squared=r_squared, adj_r_squared=adj, f_statistic=nan, f_p_value=nan,
            df_model=float(p), df_resid=df_resid, rmse=0.0 if df_resid > 0 else nan,
            log_likelihood=nan, aic=nan, bic=nan, durbin_watson=nan, jarque_bera=nan,
            jarque_bera_p=nan, skew=nan, kurtosis=nan, breusch_pagan=nan, breusch_pagan_p=nan,
            exact=True, notes=notes,
        )  # fmt: skip
    rss_e, m2, m3, m4, dw_num, uu = (math.nan if v is None else float(v) for v in resid[1:7])
    bp_g = np.array([float(v) for v in resid[7 : 7 + p]])
    # the smaller of ESS and RSS keeps its relative digits: R^2 near 0 and near 1 both exact
    r_squared = sol.ess / sol.tss if sol.ess < sol.rss else 1.0 - sol.rss / sol.tss
    f_statistic = (sol.ess / p) / sigma2
    log_likelihood = -n / 2 * (math.log(2 * math.pi) + math.log(sol.rss / n)
                               + 2 * ey * math.log(2) + 1)  # fmt: skip
    skew = (m3 / n) / (m2 / n) ** 1.5
    kurtosis = (m4 / n) / (m2 / n) ** 2
    jb = n / 6 * (skew**2 + (kurtosis - 3) ** 2 / 4)
    if uu > 0:
        cxx = sol.rinv[1:] @ sol.rinv[1:].T  # (X'X)^-1 of the centred x's
        bp = n * float(bp_g @ cxx @ bp_g) / uu
        bp_p = chi2_sf(bp, p)
    else:  # every squared residual equal: no spread to explain
        bp, bp_p = 0.0, 1.0
    return RegressionFit(
        level=grp.level,
        n=n,
        coefficients=tuple(coefficients),
        correlations=correlations,
        r=math.sqrt(max(r_squared, 0.0)),
        r_squared=r_squared,
        adj_r_squared=1.0 - (1.0 - r_squared) * (n - 1) / df_resid,
        f_statistic=f_statistic,
        f_p_value=f_sf(f_statistic, p, df_resid),
        df_model=float(p),
        df_resid=df_resid,
        rmse=math.ldexp(math.sqrt(sigma2), ey),
        log_likelihood=log_likelihood,
        aic=-2 * log_likelihood + 2 * (p + 1),
        bic=-2 * log_likelihood + math.log(n) * (p + 1),
        durbin_watson=dw_num / rss_e,
        jarque_bera=jb,
        jarque_bera_p=chi2_sf(jb, 2),
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
    confidence_level: float = CONFIDENCE,
    rank_checks: bool | None = None,
    finite_checked: bool = False,
) -> RegressionResult:
    """OLS of ``y`` on the ``x`` columns with an intercept, one fit per level of ``by``.

    ``log_x`` / ``log_y`` take natural logs first (values <= 0 are refused). Trials missing y or
    any x are left out. Each level needs as many trials as coefficients, variance in y and every
    x, and x's that are not collinear; otherwise :class:`AnalysisError` says which level fails.
    A level with no residual degrees of freedom (or zero residuals) is an exact fit: its
    coefficients, R^2 = 1 and a note; its standard errors, tests and intervals are NaN.

    ``rank_checks``: Spearman's rho and the Durbin-Watson statistic, which sort every value;
    None (default) computes them up to :data:`RANK_CHECKS_MAX` selected trials and otherwise
    leaves them NaN with a note saying so.

    ``finite_checked``: the caller has applied :func:`analysis.data.finite_check`'s rule to
    ``y`` and ``x`` on this selection already (:func:`analysis.held.regress`'s plan does, in its
    own scan), so without logs that scan is not repeated.
    """
    confidence_level = check_confidence(confidence_level)
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
        n = None
        if positive or not finite_checked:
            n = finite_check(con, sel, [(y, "--y"), *((c, "--x") for c in x)],
                             positive=positive)  # fmt: skip
            if n == 0:
                raise no_trials_error(sel, f"{y} and {', '.join(x)}")
        exprs = []
        for name, logged in ((y, log_y), *((c, log_x) for c in x)):
            e = f"CAST({quote(name)} AS DOUBLE)"
            exprs.append(f"ln({e})" if logged else e)
        not_null = [f"{quote(c)} IS NOT NULL" for c in (y, *x)]
        k = len(exprs)
        got = moments(con, sel, metrics=[Sql(e) for e in exprs], keys=by, null_keys=True,
                      where=not_null, aggregates=[f"max(d{j})" for j in range(k)])  # fmt: skip
        if n is None:  # finite_check's count: the selected trials with y and every x
            n = sum(km.n for km in got)
            if n == 0:
                raise no_trials_error(sel, f"{y} and {', '.join(x)}")
        ctes, args = base_ctes(
            sel.where_and(*not_null),
            by,
            exprs,
            [(km.key, [st.shift for st in km.stats], [st.mean_dev for st in km.stats])
             for km in got],
        )  # fmt: skip
        params = [*sel.params, *args]
        ranked = rank_checks if rank_checks is not None else n <= RANK_CHECKS_MAX
        ranks = {int(r[0]): r[1:] for r in rank_sums(con, ctes, k, params)} if ranked else {}
        groups = [
            _group(_moment_row(km, ranks.get(gi, [math.nan] * (2 * k - 1))), k=k, by=by, y=y, x=x)
            for gi, km in enumerate(got, start=1)
        ]
        factors = qr_factors(con, ctes, [grp.exps for grp in groups], params, rows=n)
        solved = [_solve(r, grp, by=by, x=x) for r, grp in zip(factors, groups, strict=True)]
        betas = [[float(b) for b in sol.beta] for sol in solved]
        scales = [[math.ldexp(1.0, -e) for e in grp.exps] for grp in groups]
        resid = residual_sums(con, ctes, len(x), betas, scales, params, durbin_watson=ranked)
    if len(resid) != len(solved):  # the two passes must see the same groups
        raise RuntimeError("residual pass found a different set of groups")
    fits = tuple(
        _fit(grp, sol, res, by=by, y=y, x=x, confidence_level=confidence_level)
        for grp, sol, res in zip(groups, solved, resid, strict=True)
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
        notes=() if ranked else (_skipped_note(n),),
    )


#: Above this many selected trials, Spearman's rho and the Durbin-Watson statistic (both sort
#: every value) are computed only when asked (``rank_checks=True``).
RANK_CHECKS_MAX = 1_000_000


def _skipped_note(n: int) -> str:
    return (
        f"Spearman's rho and Durbin-Watson not computed for {n:,} trials (they sort every "
        f"value; computed by default up to {RANK_CHECKS_MAX:,}): ask for them with --rank-checks"
    )


def _moment_row(km: Any, ranks: Sequence[Any]) -> tuple[Any, ...]:
    """The row :func:`_group` reads: levels, n, shifts, mean deviations, the largest centred
    value of each variable (from its largest deviation and mean deviation: the smallest
    deviation is 0) and the rank sums."""
    shifts = [st.shift for st in km.stats]
    mean_devs = [st.mean_dev for st in km.stats]
    k = len(km.stats)
    maxabs = [max(float(km.extra[j]) - mean_devs[j], mean_devs[j]) for j in range(k)]
    return (*km.key, km.n, *shifts, *mean_devs, *maxabs, *ranks)
