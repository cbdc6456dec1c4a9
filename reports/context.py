"""Build the one context dict every report template renders.

All statistics come from the analysis package's public functions; every number is formatted here
(one precision per column, see :mod:`reports.format`), so templates only loop and place strings.
A section whose test cannot be run (one level, too few trials) carries the analysis error's reason
as a note instead of numbers.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from analysis import (
    AnalysisError,
    AnovaResult,
    Filter,
    TtestResult,
    anova,
    box_stats,
    connect,
    list_runs,
    summarize,
    ttest,
)
from analysis.anova import SHAPIRO_MAX_N, SMALL_LEVEL_N
from analysis.data import Database
from reports import format as fmt
from reports.errors import ReportError

METRIC = "train_s"
ALPHA = 0.05
SUMMARY_BY = ("engine", "workload", "dataset", "workers", "threads_per_worker")
SUMMARY_METRICS = ("train_s", "wall_s")  # the columns summary_section reads
BOX_BY = ("engine", "workers")  # one panel per workload
TTEST_ENGINES = ("local", "dask")
TTEST_WORKERS = 1
TTEST_BOOTSTRAP = 2000  # resamples for the ratio of means' percentile interval
TTEST_SEED = 0
LONG_TEXT = 16  # characters in a factor level beyond which tables wrap the column
#: How the report names the test :func:`analysis.anova` recommends.
TEST_NAMES = {"anova": "F test", "welch": "Welch's ANOVA", "kruskal": "Kruskal–Wallis"}


def _timestamp(value: Any) -> str:
    if value is None:
        return fmt.MISSING
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds") + (" UTC" if value.tzinfo else "")
    return str(value)


def _flatten(env: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """``{"packages": {"numpy": "2.1"}}`` -> ``[{"key": "packages.numpy", "value": "2.1"}]``."""
    items: list[dict[str, str]] = []
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            items.append({"key": name, "value": ", ".join(str(v) for v in value)})
        else:
            items.append({"key": name, "value": fmt.MISSING if value is None else str(value)})
    return items


def _join(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values)


def _provenance(run_ids: Sequence[str], n: int) -> dict[str, str]:
    return {"run_ids": _join(run_ids) or fmt.MISSING, "n": str(n)}


def _long(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> bool:
    """True when some factor level is long: renderers then wrap those columns."""
    return any(len(row[k]) > LONG_TEXT for row in rows for k in keys)


def runs_section(runs: Sequence[Any]) -> dict[str, Any]:
    items = [
        {
            "run_id": str(r.run_id),
            "source": str(r.source),
            "started_at": _timestamp(r.started_at),
            "finished_at": _timestamp(r.finished_at),
            "argv": shlex.join(str(a) for a in r.argv) if r.argv else fmt.MISSING,
            "n_trials": fmt.count(r.n_trials),
            "experiments": _join(r.experiments) or fmt.MISSING,
            "env": _flatten(r.env or {}),
        }
        for r in runs
    ]
    return {"entries": items, "n_runs": str(len(items))}


def summary_section(rows_in: Sequence[dict[str, Any]], run_ids: Sequence[str]) -> dict[str, Any]:
    rows = []
    for rec in rows_in:
        rows.append(
            {
                "engine": fmt.level(rec["engine"]),
                "workload": fmt.level(rec["workload"]),
                "dataset": fmt.level(rec["dataset"]),
                "workers": fmt.level(rec["workers"]),
                "threads": fmt.level(rec["threads_per_worker"]),
                "n": fmt.count(rec["n"]),
                **{
                    f"{m}_{stat}": fmt.seconds(rec[f"{m}_{stat}"])
                    for m in SUMMARY_METRICS
                    for stat in ("mean", "sd", "median")
                },
                "train_s_ci": fmt.interval(rec["train_s_ci_low"], rec["train_s_ci_high"]),
                "wall_s_ci": fmt.interval(rec["wall_s_ci_low"], rec["wall_s_ci_high"]),
                "accuracy": fmt.fixed(rec.get("accuracy_mean"), 4),
                "failed": fmt.count(rec.get("failed")),
                "timeout": fmt.count(rec.get("timeout")),
            }
        )
    n = sum(int(r["n"]) for r in rows_in)
    long_text = _long(rows, ("engine", "workload", "dataset"))
    return {"rows": rows, "long_text": long_text, **_provenance(run_ids, n)}


def _significant(p: float) -> str:
    """``yes`` / ``no`` at the report's alpha; the missing mark when the test did not run."""
    if fmt.is_missing(p):
        return fmt.MISSING
    return "yes" if p < ALPHA else "no"


def _ratio(x: Any) -> str:
    """A ratio of means: 3 significant digits (``1.23``, ``0.0187``)."""
    return fmt.sig(x, 3)


def _ratio_text(res: TtestResult) -> str:
    """``mean_a / mean_b`` with its bootstrap interval: ``1.23 [1.10, 1.37]``."""
    if res.ratio_ci_method == "none":
        return _ratio(res.ratio)
    return f"{_ratio(res.ratio)} {fmt.interval(res.ratio_ci_low, res.ratio_ci_high, _ratio)}"


def _checks(res: AnovaResult) -> dict[str, Any]:
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
        "shapiro_sampled": res.shapiro_sampled,
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


def _tasks(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """The (workload, dataset) pairs measured: each is analysed on its own, since timings of one
    workload on different datasets are different populations."""
    return list(dict.fromkeys((r["workload"], r["dataset"]) for r in rows))


def _task_label(rows: Sequence[dict[str, Any]], workload: Any, dataset: Any) -> str:
    """``knn``, or ``knn on digits`` when the report holds more than one dataset."""
    if len({r["dataset"] for r in rows}) > 1:
        return f"{fmt.level(workload)} on {fmt.level(dataset)}"
    return fmt.level(workload)


def _task_filters(workload: Any, dataset: Any) -> tuple[Filter, ...]:
    """``workload`` on ``dataset`` (a missing dataset selects the trials without one)."""
    return (Filter("workload", "=", workload), Filter("dataset", "=", dataset))


def anova_section(
    db: Database, rows: Sequence[dict[str, Any]], run_ids: Sequence[str]
) -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    notes: list[dict[str, str]] = []
    total = 0
    combos = dict.fromkeys((r["engine"], r["workload"], r["dataset"]) for r in rows)
    for engine, workload_, dataset in combos:
        workload = _task_label(rows, workload_, dataset)
        levels = sorted(
            {
                int(r["workers"])
                for r in rows
                if (r["engine"], r["workload"], r["dataset"]) == (engine, workload_, dataset)
                and r["workers"] is not None
            }
        )
        if len(levels) < 2:
            notes.append(
                {
                    "engine": fmt.level(engine),
                    "workload": workload,
                    "reason": "measured at one worker count only "
                    f"({', '.join(map(str, levels)) or 'none'}); nothing to compare",
                }
            )
            continue
        where = (Filter("engine", "=", engine), *_task_filters(workload_, dataset))
        try:
            res = anova(db, group="workers", metric=METRIC, where=where, alpha=ALPHA)
        except AnalysisError as exc:
            notes.append({"engine": fmt.level(engine), "workload": workload, "reason": str(exc)})
            continue
        total += int(res.n)
        tests.append(
            {
                "engine": fmt.level(engine),
                "workload": workload,
                "levels": _join(fmt.level(g.level) for g in res.groups),
                "groups": [
                    {
                        "level": fmt.level(g.level),
                        "n": fmt.count(g.n),
                        "mean": fmt.seconds(g.mean),
                        "sd": fmt.seconds(g.sd),
                    }
                    for g in res.groups
                ],
                "statistic": fmt.statistic(res.statistic),
                "df": f"{fmt.dof(res.df_num)}, {fmt.dof(res.df_den)}",
                "p_value": fmt.p_value(res.p_value),
                "eta_sq": fmt.fixed(res.eta_sq, 3),
                "omega_sq": fmt.fixed(res.omega_sq, 3),
                "significant": _significant(res.p_value),
                "n": fmt.count(res.n),
                **_checks(res),
            }
        )
    return {
        "tests": tests,
        "notes": notes,
        "long_text": _long(tests, ("engine", "workload")),
        "metric": METRIC,
        "alpha": str(ALPHA),
        "shapiro_sampled": any(t["shapiro_sampled"] for t in tests),
        "shapiro_max_n": str(SHAPIRO_MAX_N),
        "small_level_n": str(SMALL_LEVEL_N),
        **_provenance(run_ids, total),
    }


def ttest_section(
    db: Database, rows: Sequence[dict[str, Any]], run_ids: Sequence[str]
) -> dict[str, Any]:
    a, b = TTEST_ENGINES
    tests: list[dict[str, Any]] = []
    notes: list[dict[str, str]] = []
    total = 0
    normal_limit: list[str] = []  # workloads whose ratio interval is the bootstrap's normal limit
    for workload_, dataset in _tasks(rows):
        workload = _task_label(rows, workload_, dataset)
        where = (*_task_filters(workload_, dataset), Filter("workers", "=", str(TTEST_WORKERS)))
        try:
            res = ttest(
                db,
                group="engine",
                a=a,
                b=b,
                metric=METRIC,
                where=where,
                n_boot=TTEST_BOOTSTRAP,
                seed=TTEST_SEED,
            )
        except AnalysisError as exc:
            notes.append({"workload": fmt.level(workload), "reason": str(exc)})
            continue
        total += int(res.n_a) + int(res.n_b)
        if res.ratio_ci_method == "bootstrap-normal":
            normal_limit.append(fmt.level(workload))
        tests.append(
            {
                "workload": fmt.level(workload),
                "n_a": fmt.count(res.n_a),
                "n_b": fmt.count(res.n_b),
                "mean_a": fmt.seconds(res.mean_a),
                "mean_b": fmt.seconds(res.mean_b),
                "mean_diff": fmt.seconds(res.mean_diff),
                "ci": fmt.interval(res.ci_low, res.ci_high),
                "statistic": fmt.statistic(res.statistic),
                "df": fmt.dof(res.df),
                "p_value": fmt.p_value(res.p_value),
                "cohens_d": fmt.fixed(res.cohens_d, 2),
                "hedges_g": fmt.fixed(res.hedges_g, 2),
                "ratio": _ratio_text(res),
                "significant": _significant(res.p_value),
            }
        )
    return {
        "tests": tests,
        "notes": notes,
        "long_text": _long(tests, ("workload",)),
        "a": a,
        "b": b,
        "workers": str(TTEST_WORKERS),
        "metric": METRIC,
        "test_name": "Welch's t-test",
        "n_boot": str(TTEST_BOOTSTRAP),
        "seed": str(TTEST_SEED),
        "ratio_normal": _join(normal_limit),
        "alpha": str(ALPHA),
        **_provenance(run_ids, total),
    }


def boxplot_section(
    db: Database, rows: Sequence[dict[str, Any]], run_ids: Sequence[str]
) -> tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]]]:
    """The boxplot's context and its panels: one ``(workload, boxes)`` per workload, boxes per
    engine and worker count (each workload on its own time scale)."""
    panels: list[tuple[str, tuple[Any, ...]]] = []
    notes: list[dict[str, str]] = []
    boxes: list[dict[str, str]] = []
    n = 0
    for workload_, dataset in _tasks(rows):
        workload = _task_label(rows, workload_, dataset)
        try:
            res = box_stats(db, by=BOX_BY, metric=METRIC, where=_task_filters(workload_, dataset))
        except AnalysisError as exc:
            notes.append({"workload": workload, "reason": str(exc)})
            continue
        panels.append((f"workload: {workload}", tuple(res.boxes)))
        for b in res.boxes:
            n += int(b.n)
            boxes.append(
                {
                    "workload": fmt.level(workload),
                    "label": str(b.label),
                    "n": fmt.count(b.n),
                    "median": fmt.seconds(b.median),
                    "iqr": fmt.interval(b.q1, b.q3),
                }
            )
    section = {
        "notes": notes,
        "boxes": boxes,
        "metric": METRIC,
        "by": " / ".join(BOX_BY),
        **_provenance(run_ids, n),
    }
    return section, panels


def build_context(db: Path) -> tuple[dict[str, Any], Any]:
    """Gather every analysis result for the report; return the context and the boxplot's panels
    (the figure is drawn by the caller, in the format it needs).

    Raises :class:`ReportError` when the database holds no usable trials. The database is
    opened once; every analysis reads through that connection.
    """
    try:
        with connect(db) as con:
            return _context(db, con)
    except AnalysisError as exc:
        raise ReportError(str(exc)) from None


def _context(db: Path, con: Database) -> tuple[dict[str, Any], Any]:
    """:func:`build_context` on an open connection (the sections catch their own analysis
    errors and turn them into notes; any other :class:`AnalysisError` fails the report)."""
    runs = list_runs(con)
    if not runs or sum(int(r.n_trials) for r in runs) == 0:
        raise ReportError("no trials in DB: run `runner trials` first")
    run_ids = [str(r.run_id) for r in runs if int(r.n_trials) > 0]
    rows = summarize(con, by=SUMMARY_BY, metrics=SUMMARY_METRICS, n_boot=0).rows
    if not rows:
        raise ReportError("no trials in DB: run `runner trials` first")

    summary = summary_section(rows, run_ids)
    anova_ctx = anova_section(con, rows, run_ids)
    ttest_ctx = ttest_section(con, rows, run_ids)
    box_ctx, box_panels = boxplot_section(con, rows, run_ids)
    warnings = [f"ANOVA {n['engine']}/{n['workload']}: {n['reason']}" for n in anova_ctx["notes"]]
    warnings += [f"t-test {n['workload']}: {n['reason']}" for n in ttest_ctx["notes"]]
    warnings += [f"boxplot {n['workload']}: {n['reason']}" for n in box_ctx["notes"]]
    context = {
        "title": "trialkit report",
        "database": str(db),
        "run_ids": run_ids,
        "n_trials": summary["n"],
        "runs": runs_section(runs),
        "summary": summary,
        "anova": anova_ctx,
        "ttest": ttest_ctx,
        "boxplot": box_ctx,
        "warnings": warnings,
    }
    return context, box_panels
