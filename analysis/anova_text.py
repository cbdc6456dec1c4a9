"""How a one-way ANOVA reads: the terminal text, the LaTeX and the tables of
:class:`analysis.anova.AnovaResult` (no statistics here: the result carries every number)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING

from analysis import lines
from analysis.anova_checks import TAIL_MIN_N
from analysis.data import fmt, fmt_p, frame_to_latex, latex_table, p_text, render_table
from analysis.latex import latex_escape
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

    from analysis.anova import AnovaResult

#: Columns of :meth:`AnovaResult.tests_frame`.
TEST_COLUMNS = ("test", "statistic", "df_num", "df_den", "p_value")
#: Terminal lines are cut (at words) to this width.
WIDTH = lines.WIDTH
NAN = math.nan
#: What a check left out (``AnovaResult.not_run``) reads as.
NOT_RUN = "not run (--checks all)"


def wrap(text: str, *, prefix: str = "") -> str:
    """``prefix + text`` within :data:`WIDTH` columns (:func:`analysis.lines.wrap`)."""
    return lines.wrap(prefix + text, width=WIDTH)


def tails_text(r: AnovaResult) -> str:
    if not r.far_out:
        return "not checked"
    pairs = list(zip(r.groups, r.far_out, strict=True))
    found = [f"{g.level}: {k} of {g.n}" for g, k in pairs if k]
    unchecked = [g.level for g, k in pairs if k is None]
    text = ", ".join(found) if found else "none"
    if unchecked:
        text += f"; not checked (< {TAIL_MIN_N} trials): {', '.join(unchecked)}"
    return text


def test_rows(r: AnovaResult) -> list[tuple[str, float, float, float, float]]:
    return [
        ("anova", r.statistic, r.df_num, r.df_den, r.p_value),
        ("welch", r.welch_statistic, r.welch_df_num, r.welch_df_den, r.welch_p_value),
        ("kruskal", r.kruskal_statistic, r.kruskal_df, NAN, r.kruskal_p_value),
        (
            "brown_forsythe",
            r.levene_statistic,
            r.levene_df_num,
            r.levene_df_den,
            r.levene_p_value,
        ),
        ("shapiro", r.shapiro_statistic, NAN, NAN, r.shapiro_p_value),
    ]


def to_dict(r: AnovaResult) -> dict:
    """Every field, in a fixed order; nested results as dicts."""
    out = {
        "metric": r.metric,
        "group": r.group,
        "statistic": r.statistic,
        "p_value": r.p_value,
        "df_num": r.df_num,
        "df_den": r.df_den,
        "eta_sq": r.eta_sq,
        "n": r.n,
        "where": list(r.where),
        "groups": [asdict(g) for g in r.groups],
    }
    for name in (
        "omega_sq",
        "welch_statistic",
        "welch_df_num",
        "welch_df_den",
        "welch_p_value",
        "kruskal_statistic",
        "kruskal_df",
        "kruskal_p_value",
        "levene_statistic",
        "levene_df_num",
        "levene_df_den",
        "levene_p_value",
        "shapiro_statistic",
        "shapiro_p_value",
        "shapiro_n",
        "seed",
        "alpha",
        "recommended",
        "recommendation",
    ):
        out[name] = getattr(r, name)
    out["notes"] = list(r.notes)
    out["posthoc"] = None if r.posthoc is None else r.posthoc.to_dict()
    out["far_out"] = list(r.far_out)
    out["not_run"] = list(r.not_run)
    return out


def level_frame(r: AnovaResult) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([asdict(g) for g in r.groups], columns=["level", "n", "mean", "sd"])


def table_frame(r: AnovaResult) -> pd.DataFrame:
    frame = level_frame(r)
    extra = {
        "f": r.statistic,
        "f_df_num": r.df_num,
        "f_df_den": r.df_den,
        "f_p_value": r.p_value,
        "welch_f": r.welch_statistic,
        "welch_df_num": r.welch_df_num,
        "welch_df_den": r.welch_df_den,
        "welch_p_value": r.welch_p_value,
        "kruskal_h": r.kruskal_statistic,
        "kruskal_df": r.kruskal_df,
        "kruskal_p_value": r.kruskal_p_value,
        "recommended": r.recommended,
        "notes": "; ".join(r.notes),
    }
    for name, value in extra.items():
        frame[name] = value
    return frame


def tests_frame(r: AnovaResult) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(test_rows(r), columns=list(TEST_COLUMNS))


def tables(r: AnovaResult) -> list[Table]:
    """``groups`` (main: the level rows of ``--format csv`` with eta², omega² and the far-out
    count per level added), ``tests`` (a row per test, with the number of values each used and
    the checks' alpha), ``recommendation`` and, with a post-hoc, its ``pairs``."""
    import pandas as pd

    groups = table_frame(r)
    far_out = r.far_out or (None,) * len(r.groups)  # per level; empty: not checked
    groups.insert(4, "far_out", pd.array(list(far_out), dtype="Int64"))
    groups["eta_sq"] = r.eta_sq
    groups["omega_sq"] = r.omega_sq
    tests = tests_frame(r)
    tests["n"] = [r.n, r.n, r.n, r.n, r.shapiro_n]
    tests["seed"] = [None, None, None, None, r.seed if r.shapiro_sampled else None]
    tests["alpha"] = r.alpha
    tests["ran"] = [name not in r.not_run for name in tests["test"]]
    rec = pd.DataFrame(
        [
            {
                "metric": r.metric,
                "group": r.group,
                "n": r.n,
                "where": " AND ".join(r.where),
                "recommended": r.recommended,
                "recommendation": r.recommendation,
                "notes": "; ".join(r.notes),
            }
        ]
    )
    out = [
        Table("groups", groups, f"One-way ANOVA of {r.metric} by {r.group}: the levels"),
        Table("tests", tests, "The F test, its alternatives and the assumption checks"),
        Table("recommendation", rec, "The recommended test and the notes"),
    ]
    if r.posthoc is not None:
        out += r.posthoc.tables()[:1]
    return out


def to_latex(r: AnovaResult) -> str:
    parts = [
        frame_to_latex(level_frame(r)),
        latex_table(list(TEST_COLUMNS), [list(row) for row in test_rows(r)]),
    ]
    if r.recommendation:
        parts.append(latex_escape(r.recommendation))
    parts += [latex_escape(n) for n in r.notes if n not in r.recommendation]
    if r.posthoc is not None:
        parts.append(r.posthoc.to_latex())
    return "\n\n".join(parts)


def _checked_p(p: float) -> str:
    return "not checked" if math.isnan(p) else fmt_p(p)


def _f_text(statistic: float, df_num: float, df_den: float) -> str:
    if math.isnan(statistic):
        return "not checked"
    return f"F({fmt(df_num)}, {fmt(df_den, 4)}) = {fmt(statistic)}"


def render(r: AnovaResult) -> str:
    where = f"; where {' '.join(r.where)}" if r.where else ""
    head = wrap(f"One-way ANOVA of {r.metric} by {r.group} (n={r.n}{where})")
    table = render_table(
        [r.group, "n", f"mean {r.metric}", "sd"],
        [(g.level, g.n, g.mean, g.sd) for g in r.groups],
    )
    tail = (
        f"F({fmt(r.df_num)}, {fmt(r.df_den)}) = {fmt(r.statistic)}, "
        f"{p_text(r.p_value)}, eta_sq = {fmt(r.eta_sq, 4)}, "
        f"omega_sq = {fmt(r.omega_sq, 4)}"
    )
    if r.shapiro_sampled:
        sw = f"Shapiro-Wilk (sample of {r.shapiro_n}, seed {r.seed})"
    else:
        sw = f"Shapiro-Wilk (n={r.shapiro_n})"
    w_text = "not checked" if math.isnan(r.shapiro_statistic) else f"W = {fmt(r.shapiro_statistic)}"
    if "shapiro" in r.not_run:
        sw, w_text = "Shapiro-Wilk", NOT_RUN
    checks = render_table(
        ["assumption", "test", "statistic", "p"],
        [
            (
                "equal variances",
                "Brown-Forsythe (Levene, median)",
                _f_text(r.levene_statistic, r.levene_df_num, r.levene_df_den),
                _checked_p(r.levene_p_value),
            ),
            (
                "normal residuals (pooled)",
                sw,
                w_text,
                "" if "shapiro" in r.not_run else _checked_p(r.shapiro_p_value),
            ),
            ("no heavy tails (per level)", "far-out values (3 IQR)", tails_text(r), ""),
        ],
    )
    kruskal = (
        "-"
        if math.isnan(r.kruskal_statistic)
        else f"H({fmt(r.kruskal_df)}) = {fmt(r.kruskal_statistic)}"
    )
    kruskal_p = fmt_p(r.kruskal_p_value)
    if "kruskal" in r.not_run:
        kruskal, kruskal_p = NOT_RUN, ""
    alternatives = render_table(
        ["for", "test", "statistic", "p"],
        [
            (
                "unequal variances",
                "Welch's ANOVA",
                _f_text(r.welch_statistic, r.welch_df_num, r.welch_df_den),
                fmt_p(r.welch_p_value),
            ),
            (
                "rank-based",
                "Kruskal-Wallis (tie-corrected)",
                kruskal,
                kruskal_p,
            ),
        ],
    )
    blocks = [
        f"{head}\n{table}\n{tail}",
        f"Assumption checks (alpha = {r.alpha:g})\n{checks}",
        f"Alternatives\n{alternatives}",
    ]
    rec = [wrap(r.recommendation)] if r.recommendation else []
    rec += [wrap(n, prefix="note: ") for n in r.notes if n not in r.recommendation]
    blocks.append("\n".join(rec))
    if r.posthoc is not None:
        blocks.append(str(r.posthoc))
    return "\n\n".join(blocks)
