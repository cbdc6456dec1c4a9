"""The general report: what any results database supports, built as sections of blocks.

Sections: the summary per configuration, the comparisons the data support
(:mod:`reports.compare`: every factor that varies, its levels compared with the other factors
held fixed, or those ``--compare`` names), the distribution of each task's times (box plots, dot
plots below 10 trials), and the appendix of runs and what differs between their environments.
All statistics come from the analysis package's public functions; every number is formatted
here (:mod:`reports.format`), so templates only loop and place strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis import AnalysisError, AnovaResult, Filter, TtestResult, list_runs, summarize
from analysis.summary import summarize_with_boxes
from reports import format as fmt
from reports.blocks import (
    Column,
    HeaderGroup,
    Paragraph,
    Section,
    SectionBuilder,
    Table,
    slug,
)
from reports.compare import (
    ALPHA,
    METRIC,
    N_BOOT,
    SEED,
    TASK_KEYS,
    CompareResult,
    Comparison,
    compare,
    factor_columns,
)
from reports.environment import environment_section
from reports.errors import ReportError
from reports.plots import draw, groups_for

#: How the report names the test :func:`analysis.anova` recommends.
TEST_NAMES = {"anova": "F test", "welch": "Welch's ANOVA", "kruskal": "Kruskal–Wallis"}
#: Notes printed by the CLI at most (the report lists them all).
MAX_WARNINGS = 8
#: Figure panels (tasks) per distribution figure at most.
MAX_PANELS = 6


@dataclass
class ReportContext:
    """Everything a template needs: sections (in order) and the report's provenance."""

    title: str
    database: str
    run_ids: list[str]
    n_trials: int
    sections: list[Section]
    intro: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: what the reader must know before any result: trials from runs that did not finish,
    #: unmerged journals (:func:`with_provenance`); shown in a box before the contents
    caveats: list[str] = field(default_factory=list)

    def figures(self) -> list[Any]:
        return [f for s in self.sections for f in s.figures()]

    def toc(self) -> list[tuple[int, str, str]]:
        out: list[tuple[int, str, str]] = []
        for s in self.sections:
            out.append((1, s.id, s.title))
            out += [(2, sub.id, sub.title) for sub in s.subsections]
        return out

    def as_template_vars(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "database": self.database,
            "run_ids": ", ".join(self.run_ids) or fmt.MISSING,
            "n_trials": str(self.n_trials),
            "intro": self.intro,
            "caveats": self.caveats,
            "sections": self.sections,
            "toc": self.toc(),
        }


def _significant(p: float) -> str:
    """``yes`` / ``no`` at the report's alpha; the missing mark when the test did not run."""
    if fmt.is_missing(p):
        return fmt.MISSING
    return "yes" if p < ALPHA else "no"


def _ratio_text(res: TtestResult) -> str:
    """``mean_a / mean_b`` with its bootstrap interval: ``1.23 [1.10, 1.37]``."""
    ratio = fmt.sig(res.ratio, 3)
    if res.ratio_ci_method == "none":
        return ratio
    return f"{ratio} {fmt.interval(res.ratio_ci_low, res.ratio_ci_high, lambda x: fmt.sig(x, 3))}"


def checks(res: AnovaResult) -> dict[str, str]:
    """The assumption checks, the two alternatives and the recommended test of one ANOVA."""
    recommended_p = {
        "anova": res.p_value,
        "welch": res.welch_p_value,
        "kruskal": res.kruskal_p_value,
    }[res.recommended]
    shapiro_p = fmt.p_value(res.shapiro_p_value)
    if res.shapiro_sampled:
        shapiro_p += f" (n = {res.shapiro_n})"
    welch_df = (
        fmt.MISSING
        if fmt.is_missing(res.welch_df_den)
        else f"{fmt.dof(res.welch_df_num)}, {fmt.dof(res.welch_df_den)}"
    )
    why = res.recommendation + "".join(
        f" {note}." for note in res.notes if note not in res.recommendation
    )
    return {
        "levene_p": fmt.p_value(res.levene_p_value),
        "shapiro_p": shapiro_p,
        "welch_statistic": fmt.statistic(res.welch_statistic),
        "welch_df": welch_df,
        "welch_p": fmt.p_value(res.welch_p_value),
        "kruskal_statistic": fmt.statistic(res.kruskal_statistic),
        "kruskal_df": fmt.dof(res.kruskal_df),
        "kruskal_p": fmt.p_value(res.kruskal_p_value),
        "recommended": TEST_NAMES[res.recommended],
        "recommended_p": fmt.p_value(recommended_p),
        "recommended_significant": _significant(recommended_p),
        "recommendation": why,
    }


CHECK_KEYS = (
    "levene_p",
    "shapiro_p",
    "welch_statistic",
    "welch_df",
    "welch_p",
    "kruskal_statistic",
    "kruskal_df",
    "kruskal_p",
    "recommended",
    "recommended_p",
    "recommended_significant",
)


# -- tasks --------------------------------------------------------------------------------------
def task_label(task: Sequence[Any], several_sources: bool) -> str:
    source, workload = task
    text = fmt.level(workload)
    return f"{text} ({fmt.level(source)})" if several_sources else text


def _fixed_text(comp: Comparison) -> str:
    text = comp.stratum.fixed_label
    if comp.stratum.along:
        text += f"; changing with it: {', '.join(comp.stratum.along)}"
    if comp.left_out:
        text += f" ({comp.left_out})"
    return text


# -- summary ------------------------------------------------------------------------------------
def summary_section(
    con: Any, run_ids: Sequence[str], varying: Sequence[str], summary: Any = None
) -> Section:
    """The summary table; ``summary``: the :func:`analysis.summarize` result of the task keys
    and ``varying`` when the caller has it (else computed here)."""
    by = (*TASK_KEYS, *varying)
    if summary is None:
        summary = summarize(con, by=by, metrics=(METRIC,), n_boot=0)
    rows_in = summary.rows
    sources = {r["source"] for r in rows_in}
    show_source = len(sources) > 1
    has_acc = any(not fmt.is_missing(r.get("accuracy_mean")) for r in rows_in)
    cols: list[Column] = []
    if show_source:
        cols.append(Column("Source", wrap=True))
    cols += [Column("Workload", wrap=True)]
    cols += [Column(v, num=False, wrap=True) for v in varying]
    cols += [Column("n", num=True)]
    cols += [Column(h, num=True) for h in ("mean", "sd", "median", "95% CI")]
    if has_acc:
        cols.append(Column("accuracy", num=True))
    cols += [Column("failed", num=True), Column("timeout", num=True)]
    rows = []
    for rec in rows_in:
        row = [fmt.level(rec["source"])] if show_source else []
        row += [fmt.level(rec["workload"]), *(fmt.level(rec[v]) for v in varying)]
        row += [
            fmt.count(rec["n"]),
            fmt.seconds(rec[f"{METRIC}_mean"]),
            fmt.seconds(rec[f"{METRIC}_sd"]),
            fmt.seconds(rec[f"{METRIC}_median"]),
            fmt.interval(rec[f"{METRIC}_ci_low"], rec[f"{METRIC}_ci_high"]),
        ]
        if has_acc:
            row.append(fmt.fixed(rec.get("accuracy_mean"), 4))
        row += [fmt.count(rec.get("failed")), fmt.count(rec.get("timeout"))]
        rows.append(tuple(row))
    n = sum(int(r["n"]) for r in rows_in)
    sec = SectionBuilder("summary", "Summary per configuration")
    sec.para(
        f"Trials used: ok, non-warm-up trials from run(s) {', '.join(run_ids)}; n = {n}.",
        "provenance",
    )
    sec.para(
        f"{METRIC} in seconds: mean, standard deviation, median and the 95% confidence interval "
        "of the mean per configuration (columns: the factors that vary in this database)."
    )
    sec.add(
        Table(
            id="summary",
            caption=f"Summary of {METRIC} per configuration",
            columns=tuple(cols),
            rows=tuple(rows),
            keys=2 if show_source else 1,
        )
    )
    return sec.build()


# -- comparisons --------------------------------------------------------------------------------
def _ttest_table(task: str, factor: str, comps: Sequence[Comparison]) -> Table:
    rows = []
    for c in comps:
        r = c.ttest
        assert r is not None
        rows.append(
            (
                _fixed_text(c),
                fmt.level(r.a),
                fmt.level(r.b),
                fmt.count(r.n_a),
                fmt.count(r.n_b),
                fmt.seconds(r.mean_a),
                fmt.seconds(r.mean_b),
                fmt.seconds(r.mean_diff),
                fmt.interval(r.ci_low, r.ci_high),
                _ratio_text(r),
                fmt.statistic(r.statistic),
                fmt.dof(r.df),
                fmt.p_value(r.p_value),
                fmt.fixed(r.cohens_d, 2),
                fmt.fixed(r.hedges_g, 2),
                _significant(r.p_value),
            )
        )
    return Table(
        id=slug(f"ttest-{task}-{factor}"),
        caption=f"{task}: {factor}, Welch's t-test of {METRIC} (a minus b)",
        columns=(
            Column("Held fixed", wrap=True),
            Column("a", wrap=True),
            Column("b", wrap=True),
            Column("n a", num=True),
            Column("n b", num=True),
            Column("mean a", num=True),
            Column("mean b", num=True),
            Column("difference", num=True),
            Column("95% CI", num=True),
            Column("ratio a/b [95% CI]", num=True),
            Column("t", num=True, tex="$t$"),
            Column("df", num=True),
            Column("p", num=True, tex="$p$"),
            Column("d", num=True, tex="$d$"),
            Column("g", num=True, tex="$g$"),
            Column("significant"),
        ),
        rows=tuple(rows),
    )


def _anova_tables(task: str, factor: str, comps: Sequence[Comparison]) -> tuple[Table, Table]:
    rows: list[tuple[str, ...]] = []
    breaks: list[int] = []
    check_rows = []
    for c in comps:
        r = c.anova
        assert r is not None
        if rows:
            breaks.append(len(rows))
        ck = checks(r)
        for i, g in enumerate(r.groups):
            head = i == 0
            rows.append(
                (
                    _fixed_text(c) if head else "",
                    fmt.level(g.level),
                    fmt.count(g.n),
                    fmt.seconds(g.mean),
                    fmt.seconds(g.sd),
                    fmt.statistic(r.statistic) if head else "",
                    f"{fmt.dof(r.df_num)}, {fmt.dof(r.df_den)}" if head else "",
                    fmt.p_value(r.p_value) if head else "",
                    fmt.fixed(r.eta_sq, 3) if head else "",
                    fmt.fixed(r.omega_sq, 3) if head else "",
                    _significant(r.p_value) if head else "",
                )
            )
        check_rows.append((_fixed_text(c), *(ck[k] for k in CHECK_KEYS)))
    main = Table(
        id=slug(f"anova-{task}-{factor}"),
        caption=f"{task}: {factor}, one-way ANOVA of {METRIC}",
        columns=(
            Column("Held fixed", wrap=True),
            Column(factor, wrap=True),
            Column("n", num=True),
            Column("mean (s)", num=True),
            Column("sd (s)", num=True),
            Column("F", num=True, tex="$F$"),
            Column("df", num=True),
            Column("p", num=True, tex="$p$"),
            Column("η²", num=True, tex=r"$\eta^2$"),
            Column("ω²", num=True, tex=r"$\omega^2$"),
            Column("significant"),
        ),
        rows=tuple(rows),
        breaks=tuple(breaks),
    )
    check = Table(
        id=slug(f"checks-{task}-{factor}"),
        caption=f"{task}: {factor}, assumption checks and alternatives",
        columns=(
            Column("Held fixed", wrap=True),
            Column("p", num=True, tex="$p$"),
            Column("p", num=True, tex="$p$"),
            Column("F", num=True, tex="$F$"),
            Column("df", num=True),
            Column("p", num=True, tex="$p$"),
            Column("H", num=True, tex="$H$"),
            Column("df", num=True),
            Column("p", num=True, tex="$p$"),
            Column("test"),
            Column("p", num=True, tex="$p$"),
            Column("significant"),
        ),
        groups=(
            HeaderGroup("", 1),
            HeaderGroup("Brown–Forsythe", 1),
            HeaderGroup("Shapiro–Wilk", 1),
            HeaderGroup("Welch's ANOVA", 3),
            HeaderGroup("Kruskal–Wallis", 3),
            HeaderGroup("Recommended", 3),
        ),
        rows=tuple(check_rows),
    )
    return main, check


def comparisons_section(result: CompareResult, several_sources: bool) -> Section:
    sec = SectionBuilder("comparisons", "Comparisons")
    if result.requested:
        names = "; ".join(
            f"{name} ({', '.join(levels) if levels else 'all levels'})"
            for name, levels in result.requested
        )
        sec.para(f"Compared as asked (--compare): {names}.")
    sec.para(
        "Every factor that varies is compared with every other factor held fixed: one "
        'comparison per combination of the others ("Held fixed"). Factors that change '
        "together with the compared one are named instead of held fixed. Two levels: "
        "Welch's t-test (difference a minus b with its 95% CI, Cohen's d, Hedges' g, the "
        f"ratio of means with its percentile bootstrap interval, {N_BOOT} resamples, seed "
        f"{SEED}); more levels: one-way ANOVA with eta² and omega², its assumption checks "
        "(Brown–Forsythe, Shapiro–Wilk), Welch's ANOVA, Kruskal–Wallis and the test they "
        "support. Different sources and workloads are never pooled."
    )
    sec.para(f"Significant at alpha = {ALPHA}.")
    notes: list[str] = []
    by_task: dict[tuple[Any, ...], list[Any]] = {}
    for fc in result.factors:
        by_task.setdefault(fc.task, []).append(fc)
    for task, factors in by_task.items():
        label = task_label(task, several_sources)
        sub = SectionBuilder(slug(f"cmp-{label}"), f"Comparisons: {label}")
        for fc in factors:
            name = fc.factor + (f" (= {', '.join(fc.aliases)})" if fc.aliases else "")
            if fc.note:
                notes.append(f"{label}: {fc.note}.")
                continue
            tt = [c for c in fc.comparisons if c.ttest is not None]
            an = [c for c in fc.comparisons if c.anova is not None]
            if tt:
                sub.add(_ttest_table(label, name, tt))
            if an:
                main, check = _anova_tables(label, name, an)
                sub.add(main)
                sub.add(check)
                sub.notes(
                    "Recommended test",
                    [
                        f"{_fixed_text(c)}: {checks(c.anova)['recommendation']}"
                        for c in an
                        if c.anova is not None
                    ],
                )
            sub.notes(
                f"{name}: not tested",
                [f"{_fixed_text(c)}: {c.reason}" for c in fc.comparisons if c.reason],
            )
        if sub.blocks:
            sec.subsections.append(sub.build())
    if result.skipped:
        notes.append(
            f"{result.skipped} further comparison(s) not run (at most "
            f"{len(result.ttests) + len(result.anovas)} per report); choose one factor with "
            "--compare FACTOR=A,B"
        )
    if not result.factors:
        notes.append(
            "Nothing varies within any workload: one configuration per workload, nothing to "
            "compare."
        )
    sec.notes("Not compared", notes)
    return sec.build()


# -- distributions ------------------------------------------------------------------------------
def _task_boxes(con: Any, by: Sequence[str]) -> tuple[dict[str, str], list[Any]] | None:
    """Every task's boxes from one ``box_stats`` pass keyed by the task and ``by`` (a panel's
    boxes are those of its task, relabelled by what varies in it); None when that pass refuses
    (NaN or infinite values: then each task is drawn, or refused, on its own)."""
    from analysis.boxstats import keyed_box_stats

    try:
        return keyed_box_stats(con, by=(*TASK_KEYS, *by), metric=METRIC)
    except AnalysisError:
        return None


def distribution_section(
    con: Any,
    tasks: Sequence[tuple[Any, ...]],
    varying: Sequence[str],
    several_sources: bool,
    *,
    varying_in: Callable[[tuple[Any, ...], Sequence[str]], list[str]],
    boxes: tuple[dict[str, str], list[Any]] | None = None,
) -> tuple[Section, list[str]]:
    """The distribution figures. ``boxes``: every task's boxes keyed by the task and
    ``varying`` (as :func:`analysis.boxstats.keyed_box_stats` gives them) when the caller has
    them (else one ``box_stats`` pass here)."""
    from analysis.boxstats import box_label
    from reports.figures import distribution
    from reports.figures_base import for_pages
    from reports.figures_dist import page_panels

    sec = SectionBuilder("distributions", f"Distribution of {METRIC} per configuration")
    notes: list[str] = []
    by = tuple(v for v in varying) or ()
    panels: list[tuple[str, list[Any]]] = []
    batch = boxes if boxes is not None else _task_boxes(con, by)
    for task in tasks:
        label = task_label(task, several_sources)
        where = [
            Filter(k, "=", None if v is None else fmt.level(v))
            for k, v in zip(TASK_KEYS, task, strict=True)
        ]
        # label a panel's groups by what varies within its task, not in the whole database
        task_by = tuple(varying_in(tuple(task), by)) if by else by
        boxes = None
        if batch is not None:
            columns, keyed = batch
            idx = [len(TASK_KEYS) + by.index(b) for b in task_by]
            boxes = [
                replace(box, label=box_label(task_by, [values[i] for i in idx], columns))
                for values, box in keyed
                if values[: len(TASK_KEYS)] == tuple(task)
            ]
        try:
            groups = groups_for(con, by=task_by, metric=METRIC, where=where, boxes=boxes)
        except AnalysisError as exc:
            notes.append(f"{label}: not drawn ({exc})")
            continue
        if not groups:
            notes.append(f"{label}: no ok trials with {METRIC}")
            continue
        panels.append((f"workload: {label}", groups))
    sec.para(
        "One dot per trial where a configuration has fewer than 10 trials (the red bar is the "
        "median); from 10 trials a box: quartiles, the median in red, whiskers to the most "
        "extreme trial within 1.5 IQR, circles beyond. One panel per workload, each on its own "
        "scale."
    )
    if for_pages():
        pages = page_panels(panels, max_panels=MAX_PANELS)
        if any(x is not None for _, xlims in pages for x in xlims):  # a panel was split
            sec.para(
                "A workload with more configurations than a page holds is split into parts "
                "(part 1 of N, ...), which share one scale."
            )
    else:
        pages = [(panels[i : i + MAX_PANELS], []) for i in range(0, len(panels), MAX_PANELS)]
    for i, (chunk, xlims) in enumerate(pages, 1):
        fig = draw(
            f"distribution-{i}",
            f"{METRIC} (s) per configuration",
            lambda chunk=chunk, xlims=xlims: distribution(chunk, metric=METRIC, xlims=xlims),
            notes,
            "distribution",
        )
        sec.add(fig)
    sec.notes("Not drawn", notes)
    return sec.build(), notes


# -- the general report -------------------------------------------------------------------------
def _combinations(con: Any, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The distinct ``(source, workload, *columns)`` among ok, non-warm-up trials, each with
    its count of trials with the metric and of those whose metric is NaN or infinite: one
    ``GROUP BY`` over the view, whatever the number of columns and tasks."""
    from analysis.data import quote, view_columns, where_clause

    sql, params = where_clause(view_columns(con), [])
    cols = ", ".join(quote(c) for c in (*TASK_KEYS, *columns))
    m = quote(METRIC)
    query = (
        f"SELECT {cols}, count({m}), count(*) FILTER (WHERE NOT isfinite(CAST({m} AS DOUBLE))) "
        f"FROM observations{sql} GROUP BY ALL"
    )
    return [tuple(r) for r in con.execute(query, params).fetchall()]


def _task_order(task: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    """``ORDER BY ALL`` of text columns: ascending, NULLs last."""
    return tuple((v is None, "" if v is None else str(v)) for v in task)


def _value_key(value: Any) -> Any:
    """A value as ``count(DISTINCT CAST(v AS VARCHAR))`` tells values apart (NaN is one)."""
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def _varying(
    combos: Sequence[tuple[Any, ...]],
    columns: Sequence[str],
    task: tuple[Any, ...] | None = None,
    among: Sequence[str] | None = None,
) -> list[str]:
    """Columns (of ``among``, default all of ``columns``) with more than one value (NULL
    counting as one) among ``combos`` from :func:`_combinations` (of ``task`` only when
    given)."""
    k = len(TASK_KEYS)
    rows = [r for r in combos if task is None or r[:k] == task]
    out = []
    for col in columns if among is None else among:
        i = k + list(columns).index(col)
        if len({_value_key(r[i]) for r in rows}) > 1:
            out.append(col)
    return out


def general_context(
    con: Any, db: Path, *, compare_items: Sequence[tuple[str, Sequence[str]]] = ()
) -> ReportContext:
    runs = list_runs(con)
    if not runs or sum(int(r.n_trials) for r in runs) == 0:
        raise ReportError("no trials in DB: run `runner trials` first")
    run_ids = [str(r.run_id) for r in runs if int(r.n_trials) > 0]
    factors = factor_columns(con)
    combos = _combinations(con, factors)
    varying = _varying(combos, factors)
    result = compare(con, requested=compare_items, combos=combos)
    # the summary's scans also give the distribution figure's boxes (same keys, same trials)
    # (without the MAD and geometric mean, which the report does not show)
    summarized, boxes = summarize_with_boxes(
        con,
        by=(*TASK_KEYS, *varying),
        metrics=(METRIC,),
        box_metric=METRIC,
        n_boot=0,
        spread=False,
    )
    summary = summary_section(con, run_ids, varying, summarized)
    n = sum(int(r[-2]) for r in combos)
    tasks = sorted({r[: len(TASK_KEYS)] for r in combos}, key=_task_order)
    several = len({t[0] for t in tasks}) > 1
    sections = [summary, comparisons_section(result, several)]
    dist, dist_notes = distribution_section(
        con,
        tasks,
        varying,
        several,
        varying_in=lambda t, among: _varying(combos, factors, t, among),
        boxes=boxes,
    )
    sections.append(dist)
    sections.append(environment_section(runs))
    warnings = [f"figure {n}" for n in dist_notes]
    for fc in result.factors:
        warnings += [
            f"{fc.factor} ({_fixed_text(c)}): {c.reason}" for c in fc.comparisons if c.reason
        ]
    if len(warnings) > MAX_WARNINGS:
        more = len(warnings) - MAX_WARNINGS
        warnings = [*warnings[:MAX_WARNINGS], f"and {more} more (listed in the report)"]
    return ReportContext(
        title="trialkit report",
        database=str(db),
        run_ids=run_ids,
        n_trials=n,
        sections=sections,
        intro=[
            f"Database: {db}. Runs: {len(runs)}. Trials analysed: {n} (ok, non-warm-up, with "
            f"{METRIC}). Every number below is computed from the trials in this database; run "
            "ids identify them."
        ],
        warnings=warnings,
    )


def build_context(
    db: Path,
    *,
    compare_items: Sequence[tuple[str, Sequence[str]]] = (),
    papers: Sequence[str] = (),
    papers_dir: Path | None = None,
) -> ReportContext:
    """Open ``db`` once and build the general report, or the paper sections of ``papers``.

    Raises :class:`ReportError` when the database holds no usable trials."""
    from analysis.provenance import open_reader

    try:
        with open_reader(db) as reader:
            con = reader.con
            if papers:
                from reports.paper import papers_context

                context = papers_context(con, db, papers, papers_dir=papers_dir)
            else:
                context = general_context(con, db, compare_items=compare_items)
            return with_provenance(context, con, db, reader.notes)
    except AnalysisError as exc:
        raise ReportError(str(exc)) from None


def with_provenance(
    context: ReportContext, con: Any, db: Path, store_notes: Sequence[str] = ()
) -> ReportContext:
    """``context`` with what its reader must know about where the trials come from (see
    :mod:`analysis.provenance`): a note box before the contents naming each run that did not
    finish (its trials, how it ended, how to resume it) and the store's notes on unmerged
    journals, a line at the top of each section those trials enter, and the same notes first
    among the CLI's warnings."""
    import duckdb

    from analysis.provenance import provenance

    try:
        found = provenance(con, db=str(db), store_notes=store_notes, noun="analysed")
    except (AnalysisError, duckdb.Error):  # the report is built; a note it cannot make is none
        return context
    if not found:
        return context
    from reports.blocks import COMMAND_MARK

    context.caveats = found.lines(exclude_hint=False, mark=COMMAND_MARK)
    context.warnings = [*found.lines(exclude_hint=False), *context.warnings]
    if found.runs:
        n = sum(r.n_trials for r in found.runs)
        ids = ", ".join(r.run_id for r in found.runs)
        runs = "run" if len(found.runs) == 1 else "runs"
        line = Paragraph(
            f"Includes {n:,} trials of {runs} {ids}, which did not finish normally (see the "
            "note at the start).",
            "caveat",
        )
        context.sections = [
            s if s.appendix else replace(s, blocks=(line, *s.blocks)) for s in context.sections
        ]
    return context
