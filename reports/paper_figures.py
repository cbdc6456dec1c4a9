"""A paper's figures, redrawn from our trials (and, where the paper drew its own numbers, from
the published rows): distributions of repeated trials, runtime and accuracy against training
fraction, loss and accuracy per epoch, resource use over time, scaling with the fitted law, the
cost–time Pareto front and regression scatter. A figure whose data are absent is left out with
a one-line note.
"""

from __future__ import annotations

from typing import Any

from analysis import AnalysisError, Filter, cost, scaling, summarize
from reports import format as fmt
from reports.blocks import Figure
from reports.plots import draw, groups_for

#: Price of one core for one hour when a paper's trials are priced by core-hours (about an
#: on-demand general-purpose cloud vCPU); said in the caption.
USD_PER_CORE_HOUR = 0.048
SCALING_BOOT = 200
MAX_SERIES = 8


def _measured_filters(spec: Any) -> list[Filter]:
    return [Filter("experiment", "=", spec.experiment), Filter("source", "=", "measured")]


def _ok_sql() -> str:
    return "status = 'ok' AND NOT coalesce(warmup, false)"


def _columns(con: Any) -> set[str]:
    return {r[0] for r in con.execute("DESCRIBE observations").fetchall()}


def _distinct(con: Any, spec: Any, column: str) -> list[Any]:
    if column not in _columns(con):
        return []
    from analysis.data import quote

    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {quote(column)} FROM observations WHERE experiment = ? "
            f"AND source = 'measured' AND {_ok_sql()} ORDER BY 1",
            [spec.experiment],
        ).fetchall()
    ]


def distribution_figure(con: Any, spec: Any, notes: list[str]) -> Figure | None:
    """Box plots (dots below 10 trials) of the time of each table's configurations."""
    from reports.figures import distribution

    cols = _columns(con)
    panels = []
    for table in spec.tables:
        metric = next((v.name for v in table.values if v.name in TIME_SET), None)
        if metric is None or metric not in cols:
            continue
        by = [k for k in (*table.rows, *table.cols) if k in cols]
        where = _measured_filters(spec) + [
            Filter(k, "=", None if v is None else fmt.level(v))
            for k, v in table.where.items()
            if k in cols
        ]
        try:
            groups = groups_for(con, by=by, metric=metric, where=where)
        except AnalysisError:
            continue
        if groups:
            panels.append((f"{table.label}: {metric}", groups))
    if not panels:
        notes.append("distribution of repeated trials: no measured times yet")
        return None
    return draw(
        f"p{spec.key}-distribution",
        "Time of every measured trial per configuration of each table: dots (one per trial) "
        "below 10 trials with the median as a red bar, boxes from 10.",
        lambda: distribution(panels[:6], metric="time"),
        notes,
        "distribution of repeated trials",
    )


TIME_SET = {"train_s", "wall_s"}


def fraction_figure(con: Any, spec: Any, notes: list[str]) -> Figure | None:
    """Runtime and accuracy against the training fraction (when it varies)."""
    from reports.figures import Point, Series, line_plot

    if len(_distinct(con, spec, "data_fraction")) < 2:
        return None
    cols = _columns(con)
    by = [c for c in ("engine", "impl", "solver", "workers") if c in cols]
    by = [c for c in by if len(_distinct(con, spec, c)) > 1] or ["engine"]
    metrics = ["train_s"] + (["accuracy"] if "accuracy" in cols else [])
    try:
        rows = summarize(
            con,
            by=[*by, "data_fraction"],
            metrics=metrics,
            where=_measured_filters(spec),
            n_boot=0,
        ).rows
    except AnalysisError as exc:
        notes.append(f"runtime against training fraction: not drawn ({exc})")
        return None
    series: dict[str, list[Any]] = {}
    acc: dict[str, list[Any]] = {}
    for r in rows:
        if r["n"] == 0 or r["data_fraction"] is None:
            continue
        label = " / ".join(fmt.level(r[b]) for b in by)
        series.setdefault(label, []).append(
            Point(
                float(r["data_fraction"]),
                r["train_s_mean"],
                r["train_s_ci_low"],
                r["train_s_ci_high"],
            )
        )
        if "accuracy" in metrics:
            acc.setdefault(label, []).append(
                Point(
                    float(r["data_fraction"]),
                    r["accuracy_mean"],
                    r["accuracy_ci_low"],
                    r["accuracy_ci_high"],
                )
            )
    upper = [Series(k, v) for k, v in list(series.items())[:MAX_SERIES]]
    lower = [Series(k, v) for k, v in list(acc.items())[:MAX_SERIES]] or None
    return draw(
        f"p{spec.key}-fraction",
        "Mean training time (top) and test accuracy (bottom) against the fraction of the "
        "training set, with 95% confidence intervals.",
        lambda: line_plot(
            upper,
            x_label="training fraction",
            y_label="train_s (s)",
            lower=lower,
            lower_y_label="accuracy" if lower else None,
        ),
        notes,
        "runtime and accuracy against training fraction",
    )


def curves_figures(con: Any, spec: Any, notes: list[str]) -> list[Figure]:
    """Loss and accuracy per epoch, one figure per engine and workload with curves."""
    from reports.figures import curves_plot

    rows = con.execute(
        "SELECT o.engine, o.workload, c.trial_id, c.part, c.name, c.step, c.value "
        "FROM curves c JOIN observations o USING (trial_id) WHERE o.experiment = ? "
        "AND o.source = 'measured' AND o.status = 'ok' AND NOT coalesce(o.warmup, false) "
        "ORDER BY 1, 2, 3, 4, 5, 6",
        [spec.experiment],
    ).fetchall()
    if not rows:
        notes.append("loss and accuracy per epoch: no training curves measured")
        return []
    groups: dict[tuple[Any, Any], list[tuple[Any, ...]]] = {}
    for engine, workload, *rest in rows:
        groups.setdefault((engine, workload), []).append(tuple(rest))
    out = []
    for (engine, workload), pts in list(groups.items())[:4]:
        label = f"{fmt.level(workload)} on {fmt.level(engine)}"
        fig = draw(
            f"p{spec.key}-curves-{label}",
            f"Loss and accuracy per epoch, {label} (train solid, validation dashed; mean over "
            f"{len({p[0] for p in pts})} trial(s), band: their range).",
            lambda pts=pts, label=label: curves_plot(pts, title=label),
            notes,
            f"curves {label}",
        )
        if fig is not None:
            out.append(fig)
    return out


def resource_figure(con: Any, spec: Any, notes: list[str]) -> Figure | None:
    """CPU % and RSS over time of one representative trial (the median time) per engine and
    workload."""
    from reports.figures import ResourceSeries, resource_plot

    picks = con.execute(
        """
        WITH t AS (
            SELECT o.trial_id, o.engine, o.workload, o.train_s,
                   row_number() OVER (PARTITION BY o.engine, o.workload ORDER BY o.train_s)
                       AS rk,
                   count(*) OVER (PARTITION BY o.engine, o.workload) AS n
            FROM observations o
            WHERE o.experiment = ? AND o.source = 'measured' AND o.status = 'ok'
              AND NOT coalesce(o.warmup, false) AND o.train_s IS NOT NULL
              AND o.trial_id IN (SELECT trial_id FROM samples)
        )
        SELECT trial_id, engine, workload FROM t WHERE rk = (n + 1) // 2 ORDER BY 2, 3
        """,
        [spec.experiment],
    ).fetchall()
    if not picks:
        notes.append("resource use over time: no resource samples measured")
        return None
    series = []
    for trial_id, engine, workload in picks[:MAX_SERIES]:
        samples = con.execute(
            "SELECT t_s, cpu_percent, rss_mb FROM samples WHERE trial_id = ? ORDER BY t_s",
            [trial_id],
        ).fetchall()
        series.append(
            ResourceSeries(
                label=f"{fmt.level(workload)} on {fmt.level(engine)} (trial {trial_id})",
                t_s=[s[0] for s in samples],
                cpu_percent=[s[1] for s in samples],
                rss_mb=[s[2] for s in samples],
            )
        )
    return draw(
        f"p{spec.key}-resources",
        "CPU (percent of one core) and resident memory of the trial's process tree over the "
        "trial, for the trial of median training time of each engine and workload.",
        lambda: resource_plot(series),
        notes,
        "resource use over time",
    )


def scaling_figure(con: Any, spec: Any, notes: list[str]) -> Figure | None:
    """Median time per worker count with the best fitted scaling law and its band."""
    from reports.figures import FitPoint, ScalingSeries, scaling_plot

    workers = [w for w in _distinct(con, spec, "workers") if w is not None]
    if len(workers) < 2:
        notes.append("scaling: fewer than two worker counts measured")
        return None
    grid = sorted({float(w) for w in workers} | {float(max(workers)) * 2})
    top = float(max(workers)) * 2
    grid = sorted(set(grid) | {1 + (top - 1) * i / 24 for i in range(25)})
    groups = con.execute(
        "SELECT engine, workload FROM observations WHERE experiment = ? AND source = 'measured' "
        f"AND {_ok_sql()} AND train_s IS NOT NULL GROUP BY ALL "
        "HAVING count(DISTINCT workers) >= 2 ORDER BY ALL",
        [spec.experiment],
    ).fetchall()
    series = []
    for engine, workload in groups[:MAX_SERIES]:
        where = [
            *_measured_filters(spec),
            Filter("engine", "=", engine),
            Filter("workload", "=", workload),
        ]
        try:
            res = scaling(con, x="workers", by=(), where=where, predict=grid, n_boot=SCALING_BOOT)
        except AnalysisError as exc:
            notes.append(f"scaling of {workload} on {engine}: not drawn ({exc})")
            continue
        for g in res.groups:
            best = g.best_model
            curve = [
                FitPoint(p.x, p.time, p.ci_low, p.ci_high) for p in g.predictions if p.model == best
            ]
            measured_x = {lv.x for lv in g.levels}
            series.append(
                ScalingSeries(
                    label=f"{fmt.level(workload)} on {fmt.level(engine)}",
                    measured=[FitPoint(lv.x, lv.median) for lv in g.levels],
                    curve=curve,
                    predicted=[c for c in curve if c.x > max(measured_x) and c.x == top],
                    model=best or "",
                )
            )
    if not series:
        notes.append("scaling: no engine and workload measured at two or more worker counts")
        return None
    return draw(
        f"p{spec.key}-scaling",
        "Median training time per worker count (filled markers), the best-fitting scaling law "
        f"(lowest AIC of Amdahl, USL, Ernest) with its 95% bootstrap band ({SCALING_BOOT} "
        "resamples), and its prediction at twice the largest count (open marker).",
        lambda: scaling_plot(series[:MAX_SERIES]),
        notes,
        "scaling",
    )


def pareto_figure(con: Any, spec: Any, notes: list[str]) -> Figure | None:
    """Cost against time of our configurations (priced by core-hours), Pareto front marked."""
    from reports.figures import CostPoint, pareto_plot

    if not _distinct(con, spec, "engine"):
        notes.append("cost-time Pareto front: no measured trials")
        return None
    try:
        res = cost(con, usd_per_core_hour=USD_PER_CORE_HOUR, where=_measured_filters(spec))
    except AnalysisError as exc:
        notes.append(f"cost-time Pareto front: not drawn ({exc})")
        return None
    rows = [r for r in res.rows if r.n > 0]
    if len(rows) < 2:
        notes.append("cost-time Pareto front: fewer than two configurations")
        return None
    points = [CostPoint(r.label, r.median_s, r.median_cost_usd) for r in rows]
    return draw(
        f"p{spec.key}-pareto",
        f"Median cost per run against median time per configuration, priced at "
        f"{USD_PER_CORE_HOUR} USD per core-hour (workers x threads held); the Pareto front "
        "(no configuration both faster and cheaper) is numbered.",
        lambda: pareto_plot(points, [r.pareto for r in rows]),
        notes,
        "cost-time Pareto front",
    )


def published_scatter(con: Any, spec: Any, notes: list[str]) -> list[Figure]:
    """The paper's own regression scatter: published time against vCPUs and memory (004)."""
    from reports.figures import scatter_fit

    cols = _columns(con)
    out = []
    for x, label in (("vcpu", "vCPUs"), ("mem_gib", "memory (GiB)")):
        if x not in cols:
            continue
        rows = con.execute(
            f'SELECT "table", CAST({x} AS DOUBLE), train_s FROM observations WHERE source = ? '
            f"AND status = 'ok' AND {x} IS NOT NULL AND train_s IS NOT NULL",
            [f"published:{spec.key}"],
        ).fetchall()
        if len(rows) < 3:
            continue
        pts = [(float(r[1]), float(r[2])) for r in rows]
        fig = draw(
            f"p{spec.key}-scatter-{x}",
            f"Published training time against {label} (every published row with both), with "
            "the least-squares line, its 95% confidence band and prediction band.",
            lambda pts=pts, label=label: scatter_fit(
                pts, x_label=label, y_label="train_s (s), published"
            ),
            notes,
            f"published time against {label}",
        )
        if fig is not None:
            out.append(fig)
    return out


def paper_figures(con: Any, spec: Any) -> tuple[list[Figure], list[str]]:
    notes: list[str] = []
    figures: list[Figure | None] = [distribution_figure(con, spec, notes)]
    figures.append(fraction_figure(con, spec, notes))
    figures += curves_figures(con, spec, notes)
    figures.append(resource_figure(con, spec, notes))
    figures.append(scaling_figure(con, spec, notes))
    figures.append(pareto_figure(con, spec, notes))
    figures += published_scatter(con, spec, notes)
    return [f for f in figures if f is not None], notes
