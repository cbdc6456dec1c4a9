"""How :class:`~analysis.cost.CostResult` and :class:`~analysis.cost_metric.CostMetricResult`
are shown: terminal text (lines within 120 columns apart from tables, which
:func:`~analysis.data.render_table` lays out), frames, dicts and the ``tables()`` of
``--format csv/latex``. Nothing here computes a statistic."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from analysis.cost_data import CORES_TEXT
from analysis.data import fmt, render_table
from analysis.scaling_text import wrap

if TYPE_CHECKING:
    import pandas as pd

    from analysis.cost import CostResult, CostRow
    from analysis.cost_metric import CostMetricResult, CostMetricRow
    from analysis.tables import Table

ROW_COLUMNS = ("n", "median_s", "usd_per_hour", "median_cost_usd", "pareto", "meets_deadline")


# -- cost ---------------------------------------------------------------------------------------
def cost_dict(res: CostResult) -> dict[str, Any]:
    out = asdict(res)
    out["cheapest"] = None if res.cheapest is None else res.cheapest.label
    out["cheapest_per_stratum"] = [
        {"stratum": label, "cheapest": None if row is None else row.label}
        for label, row in res.cheapest_per_stratum
    ]
    return out


def cost_frame(res: CostResult) -> pd.DataFrame:
    """One row per configuration: the ``by`` columns (and ``cores`` when priced per core), then
    :data:`ROW_COLUMNS`."""
    import pandas as pd

    rows = [{**r.level, **{c: getattr(r, c) for c in ROW_COLUMNS}} for r in res.rows]
    return pd.DataFrame(rows, columns=[*res.by, *ROW_COLUMNS])


def _short(res: CostResult, row: CostRow) -> str:
    """A row's label without the stratum's own values and without missing (NULL) values."""
    items = [f"{k}={v}" for k, v in row.level.items() if k not in res.split and v != "NULL"]
    return ", ".join(items) or row.label


def _in_stratum(res: CostResult, label: str) -> list[CostRow]:
    items = set(label.split(", "))
    return [r for r in res.rows if {f"{k}={r.level.get(k)}" for k in res.split} <= items]


def _none_reason(res: CostResult, rows: list[CostRow]) -> str:
    if not any(r.median_cost_usd is not None for r in rows):
        return "no configuration could be priced (see the note)"
    return f"no configuration meets the deadline of {res.deadline_s:g} s"


def _cheapest(res: CostResult) -> list[tuple[str, CostRow | None, str]]:
    """(stratum label, cheapest row or None, why none) per stratum, or once for the result."""
    if res.cheapest_per_stratum:
        return [
            (label, best, "" if best else _none_reason(res, _in_stratum(res, label)))
            for label, best in res.cheapest_per_stratum
        ]
    best = res.cheapest
    return [("", best, "" if best else _none_reason(res, list(res.rows)))]


def cost_tables(res: CostResult) -> list[Table]:
    import pandas as pd

    from analysis.tables import Table

    cheap = pd.DataFrame(
        [
            {
                "stratum": label,
                "cheapest": None if best is None else best.label,
                "median_s": None if best is None else best.median_s,
                "usd_per_hour": None if best is None else best.usd_per_hour,
                "median_cost_usd": None if best is None else best.median_cost_usd,
                "deadline_s": res.deadline_s,
                "none_because": why or None,
            }
            for label, best, why in _cheapest(res)
        ]
    )
    what = "meeting the deadline" if res.deadline_s is not None else "overall"
    return [
        Table(
            "configurations",
            cost_frame(res),
            f"Median {res.metric} and cost per "
            f"configuration ({res.basis}); pareto: on the cost/time front",
        ),  # fmt: skip
        Table("cheapest", cheap, f"The cheapest configuration {what}, per stratum"),
    ]


def cost_text(res: CostResult) -> str:
    headers = [*res.by, "n", f"median {res.metric}", "$/hour", "median $", "pareto"]
    if res.deadline_s is not None:
        headers.append(f"<= {res.deadline_s:g} s")
    table = []
    for r in res.rows:
        row = [*(r.level.get(k, "-") for k in res.by), r.n, fmt(r.median_s)]
        row += [fmt(r.usd_per_hour, 4), fmt(r.median_cost_usd, 4), "*" if r.pareto else ""]
        if res.deadline_s is not None:
            row.append("yes" if r.meets_deadline else "no")
        table.append(row)
    lines = [wrap(f"cost of {res.metric} ({res.basis})"), render_table(headers, table)]
    what = "meeting the deadline" if res.deadline_s is not None else "overall"
    if res.split:
        lines.append(f"held fixed: {', '.join(res.split)} (Pareto front and cheapest per "
                     "combination)")  # fmt: skip
    for label, best, why in _cheapest(res):
        head = f"{label}: " if label else ""
        if best is None:
            lines.append(f"{head}{why}")
        else:
            lines.append(
                f"{head}cheapest {what}: {_short(res, best)} (median "
                f"${best.median_cost_usd:.6g} per trial, {best.median_s:.6g} s)"
            )
    if res.where:
        lines.append("where " + " AND ".join(res.where))
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(wrap(line) for line in lines)


# -- COST ---------------------------------------------------------------------------------------
def cost_metric_notes(res: CostMetricResult) -> list[str]:
    def task(r: CostMetricRow) -> str:
        return f"{r.workload} on {r.dataset}" + (f" ({r.stratum})" if r.stratum else "")

    lacking = list(dict.fromkeys(task(r) for r in res.rows if r.baseline_s is None))
    notes = []
    if lacking:
        notes.append(
            f"no single-core configuration (cores = 1, or workers = threads_per_worker = 1) to "
            f"compare with in {len(lacking)} of {len({task(r) for r in res.rows})} tasks: "
            f"{'; '.join(lacking)}; run one (e.g. engine local), or leave them out with --where"
        )
    notes += [
        f"{r.engine}, {task(r)}: {r.unknown_cores} configurations without a core count "
        f"({CORES_TEXT}) left out"
        for r in res.rows
        if r.unknown_cores
    ]
    return notes


def cost_metric_tables(res: CostMetricResult) -> list[Table]:
    import pandas as pd

    from analysis.tables import Table

    cols = ["workload", "dataset", "stratum", "engine", "verdict", "cost_cores", "median_s",
            "max_cores", "baseline_s", "baseline", "is_baseline", "unknown_cores"]  # fmt: skip
    frame = pd.DataFrame([{**asdict(r), "verdict": r.verdict} for r in res.rows], columns=cols)
    caption = (
        f"COST of {res.metric}: the fewest cores of each engine whose median beats the best "
        "single-core configuration"
    )
    return [Table("cost", frame, caption)]


def cost_metric_text(res: CostMetricResult) -> str:
    strata = any(r.stratum for r in res.rows)
    headers = ["workload", "dataset", "engine", "COST (cores)", f"median {res.metric}"]
    headers.append("single-core best")
    if strata:
        headers.insert(2, "held fixed")
    table = [
        [
            r.workload,
            r.dataset,
            *([r.stratum] if strata else []),
            r.engine,
            r.verdict,
            "-" if r.median_s is None else fmt(r.median_s),
            "-" if r.baseline_s is None else f"{fmt(r.baseline_s)} ({r.baseline})",
        ]
        for r in res.rows
    ]
    lines = [
        f"COST of {res.metric}: the fewest cores of each engine that beat the best single-core "
        "configuration",
        render_table(headers, table),
    ]
    if res.where:
        lines.append("where " + " AND ".join(res.where))
    lines += [f"note: {n}" for n in [*res.notes, *cost_metric_notes(res)]]
    return "\n".join(wrap(line) for line in lines)
