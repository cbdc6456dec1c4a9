"""Text and LaTeX of a :class:`~analysis.regress_result.RegressionResult` (no statistics here).

Every line of the text fits 120 columns: free-text lines wrap, tables go through
:func:`analysis.data.render_table`. NaN (a statistic an exact fit does not have) shows as ``-``.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

from analysis.data import fmt, fmt_p, frame_to_latex, level_label, p_text, render_table

if TYPE_CHECKING:
    from analysis.regress_result import RegressionFit, RegressionResult

#: widest line of the terminal output
WIDTH = 120


def wrap(line: str) -> str:
    """``line`` folded at spaces to :data:`WIDTH` columns, continuation lines indented."""
    if len(line) <= WIDTH:
        return line
    return textwrap.fill(line, width=WIDTH, subsequent_indent="  ", break_on_hyphens=False)


def r_text(fit: RegressionFit) -> str:
    """``r = <Pearson's r>`` (signed, as beside it) for one x; ``multiple R = sqrt(R^2)``
    for several (unsigned: no one x gives it a sign)."""
    if len(fit.correlations) == 1:
        return f"r = {fmt(fit.correlations[0].pearson_r, 4)}"
    return f"multiple R = {fmt(fit.r, 4)}"


def _ci(low: float, high: float) -> str:
    if math.isnan(low) and math.isnan(high):
        return "-"
    return f"[{fmt(low)}, {fmt(high)}]"


def _fit_lines(result: RegressionResult, fit: RegressionFit) -> list[str]:
    pct = f"{result.confidence_level * 100:g}%"
    head = level_label(result.by, fit.level)
    lines = ["", wrap(f"{head} (n={fit.n})" if head else f"(n={fit.n})")]
    lines.append(
        render_table(
            ["term", "estimate", "std_err", "t", "p", f"{pct} CI"],
            [
                (
                    result.term_label(c.term),
                    c.estimate,
                    c.std_err,
                    c.statistic,
                    fmt_p(c.p_value),
                    _ci(c.ci_low, c.ci_high),
                )
                for c in fit.coefficients
            ],
        )
    )
    lines.append(
        wrap(
            f"R^2 = {fmt(fit.r_squared, 4)}, adj R^2 = {fmt(fit.adj_r_squared, 4)}, "
            f"{r_text(fit)}, F({fmt(fit.df_model)}, {fmt(fit.df_resid)}) = "
            f"{fmt(fit.f_statistic)}, {p_text(fit.f_p_value)}, rmse = {fmt(fit.rmse)}, "
            f"AIC = {fmt(fit.aic)}"
        )
    )
    if not fit.exact:
        lines.append(
            wrap(
                f"residuals: Durbin-Watson = {fmt(fit.durbin_watson, 4)}, Jarque-Bera = "
                f"{fmt(fit.jarque_bera, 4)} ({p_text(fit.jarque_bera_p)}), Breusch-Pagan = "
                f"{fmt(fit.breusch_pagan, 4)} ({p_text(fit.breusch_pagan_p)})"
            )
        )
    lines.append(
        render_table(
            ["x", "pearson_r", "p", "spearman_rho", "p"],
            [
                (
                    result.term_label(c.x),
                    c.pearson_r,
                    fmt_p(c.pearson_p),
                    c.spearman_rho,
                    fmt_p(c.spearman_p),
                )
                for c in fit.correlations
            ],
        )
    )
    lines += [wrap(f"note: {n}") for n in fit.notes]
    return lines


def text(result: RegressionResult) -> str:
    """The terminal output: a header, then per level its coefficients, fit line, residual
    checks, correlations and notes; the result's notes last."""
    terms = " + ".join(result.term_label(x) for x in result.x)
    where = f"; where {' '.join(result.where)}" if result.where else ""
    blocks = [wrap(f"OLS of {result.y_label} on {terms}{where}")]
    blocks += ["\n".join(_fit_lines(result, fit)) for fit in result.fits]
    blocks += [wrap(f"note: {n}") for n in result.notes]
    return "\n".join(blocks)


def latex(result: RegressionResult) -> str:
    """Two ``tabular``s: the coefficients with each x's correlations, then the fit
    statistics and residual checks per level (every column is in ``to_frame()``); notes as
    LaTeX comments below."""
    by = list(result.by)
    coefs = result.to_frame()[[*by, "term", "estimate", "std_err", "statistic", "p_value",
                               "ci_low", "ci_high", "pearson_r", "spearman_rho"]]  # fmt: skip
    fits = result.fit_frame()[
        [
            *by,
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
    notes = [*result.notes, *(n for fit in result.fits for n in fit.notes)]
    comments = "".join(f"\n% note: {' '.join(n.split())}" for n in notes)
    return frame_to_latex(coefs) + "\n\n" + frame_to_latex(fits) + comments
