"""How a two-way ANOVA reads: the terminal text, the LaTeX and the tables of
:class:`analysis.twoway.TwoWayAnovaResult` (no statistics here)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from analysis.anova_text import wrap
from analysis.data import fmt_p, latex_table, render_table
from analysis.latex import latex_escape
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

    from analysis.twoway import TwoWayAnovaResult

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
TERM_HEADERS = ["source", "sum_sq", "df", "mean_sq", "F", "p", "eta_sq_p", "omega_sq_p"]


def term_frame(r: TwoWayAnovaResult) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([asdict(t) for t in r.terms], columns=list(TERM_COLUMNS))


def cell_frame(r: TwoWayAnovaResult) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([asdict(c) for c in r.cells], columns=list(CELL_COLUMNS))


def marginal_frame(r: TwoWayAnovaResult) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([asdict(m) for m in r.marginals], columns=list(MARGINAL_COLUMNS))


def tables(r: TwoWayAnovaResult) -> list[Table]:
    """``terms`` (main: the ANOVA table with the sums-of-squares type, the divisor of the
    metric the sums of squares are of, and n on every row), ``cells``, ``marginals`` and
    ``notes`` (one row per note)."""
    import pandas as pd

    a, b = r.groups
    terms = term_frame(r)
    terms["ss_type"] = r.ss_type
    terms["ss_scale"] = r.ss_scale
    terms["n"] = r.n
    ss = f"Type {'I' * r.ss_type}"
    return [
        Table("terms", terms, f"Two-way ANOVA of {r.metric} by {a} and {b} ({ss} sums of squares)"),
        Table("cells", cell_frame(r), f"{r.metric} per {a} x {b} cell"),
        Table("marginals", marginal_frame(r), f"{r.metric} per level of {a} and of {b}"),
        Table("notes", pd.DataFrame({"note": list(r.notes)}, dtype=object), "Notes"),
    ]


def _term_rows(r: TwoWayAnovaResult, *, p_text: bool) -> list[tuple[Any, ...]]:
    return [
        (
            t.term,
            t.sum_sq,
            t.df,
            t.mean_sq,
            t.statistic,
            fmt_p(t.p_value) if p_text else t.p_value,
            t.eta_sq_partial,
            t.omega_sq_partial,
        )
        for t in r.terms
    ]


def _cell_rows(r: TwoWayAnovaResult) -> list[tuple[Any, ...]]:
    return [(c.level_a, c.level_b, c.n, c.mean, c.sd) for c in r.cells]


def ss_unit(r: TwoWayAnovaResult) -> str:
    """How the sums of squares are expressed: empty when in the metric's own units."""
    if r.ss_scale == 1.0:
        return ""
    return (
        f"sum_sq and mean_sq are of {r.metric} / {r.ss_scale:.6g} (its squares leave a "
        "double's range)"
    )


def to_latex(r: TwoWayAnovaResult) -> str:
    """Two ``tabular``s: the ANOVA table, then the cell means; the notes below."""
    a, b = r.groups
    anova = latex_table(
        ["source", "sum_sq", "df", "mean_sq", "F", "p_value", "eta_sq_p", "omega_sq_p"],
        _term_rows(r, p_text=False),
    )
    cells = latex_table([a, b, "n", f"mean {r.metric}", "sd"], _cell_rows(r))
    notes = [latex_escape(n) for n in ([ss_unit(r)] if ss_unit(r) else []) + list(r.notes)]
    return "\n\n".join([anova, cells, *notes])


def render(r: TwoWayAnovaResult) -> str:
    a, b = r.groups
    where = f"; where {' '.join(r.where)}" if r.where else ""
    head = wrap(
        f"Two-way ANOVA of {r.metric} by {a} and {b} "
        f"(Type {'I' * r.ss_type} sums of squares; n={r.n}{where})"
    )
    cells = render_table([a, b, "n", f"mean {r.metric}", "sd"], _cell_rows(r))
    margins = []
    for factor in r.groups:
        rows = [m for m in r.marginals if m.factor == factor]
        margins.append(
            render_table(
                [factor, "n", f"mean {r.metric}", "sd", "unweighted mean"],
                [(m.level, m.n, m.mean, m.sd, m.mean_unweighted) for m in rows],
            )
        )
    table = render_table(TERM_HEADERS, _term_rows(r, p_text=True))
    if ss_unit(r):
        table += "\n" + wrap(ss_unit(r))
    blocks = [head, cells, *margins, table]
    if r.notes:
        blocks.append("\n".join(wrap(n, prefix="note: ") for n in r.notes))
    return "\n\n".join(blocks)
