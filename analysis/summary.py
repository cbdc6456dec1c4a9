"""Descriptive statistics per configuration, box-plot statistics and the list of runs.

All aggregation happens in DuckDB; Python only receives one row per group (plus box-plot
fliers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    check_column,
    check_distinct,
    connect,
    execute,
    fmt,
    format_level,
    is_numeric_type,
    quote,
    render_table,
    select,
)
from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError
from analysis.intervals import t_interval

if TYPE_CHECKING:
    import pandas as pd

STAT_SUFFIXES = (
    "mean",
    "sd",
    "median",
    "ci_low",
    "ci_high",
    "mad",
    "min",
    "max",
    "cv",
    "q1",
    "q3",
    "outliers",
)
#: Tukey's fences: values beyond q1 - 1.5 IQR or q3 + 1.5 IQR are counted (never dropped).
TUKEY_K = 1.5


def _group_sql(by: Sequence[str]) -> tuple[str, str, str, str]:
    """(select-list prefix, PARTITION BY clause, GROUP BY clause, ORDER BY clause)."""
    if not by:
        return "", "", "", ""
    cols = ", ".join(quote(b) for b in by)
    order = ", ".join(f"{quote(b)} NULLS LAST" for b in by)
    return f"{cols}, ", f"PARTITION BY {cols}", f" GROUP BY {cols}", f" ORDER BY {order}"


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


# -- summary ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SummaryResult:
    """One row per configuration (combination of ``by`` values); see :meth:`columns`."""

    by: tuple[str, ...]
    metrics: tuple[str, ...]
    rows: tuple[dict, ...]
    where: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        """The by columns, ``n``, per metric ``<metric>_`` mean, sd, median, ci_low, ci_high, mad
        (median absolute deviation, unscaled), min, max, cv (sd / mean), q1, q3 (linear
        interpolation) and outliers (count beyond Tukey's fences), then ``accuracy_mean``,
        ``failed``, ``timeout`` and ``failure_rate`` ((failed + timeout) / all trials)."""
        cols = [*self.by, "n"]
        for m in self.metrics:
            cols += [f"{m}_{s}" for s in STAT_SUFFIXES]
        return [*cols, "accuracy_mean", "failed", "timeout", "failure_rate"]

    def to_dict(self) -> dict:
        return {
            "by": list(self.by),
            "metrics": list(self.metrics),
            "where": list(self.where),
            "rows": [dict(r) for r in self.rows],
        }

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([dict(r) for r in self.rows], columns=self.columns)

    def __str__(self) -> str:
        where = f" (where {' '.join(self.where)})" if self.where else ""
        headers = [*self.by, "n"]
        for m in self.metrics:
            headers += [f"{m} mean", "sd", "median", "95% CI", "cv", "outliers"]
        headers += ["accuracy", "failed", "timeout"]
        body = []
        for r in self.rows:
            row: list[Any] = [format_level(r[b]) for b in self.by] + [r["n"]]
            for m in self.metrics:
                ci = (
                    "-"
                    if math.isnan(r[f"{m}_ci_low"])
                    else f"[{fmt(r[f'{m}_ci_low'], 4)}, {fmt(r[f'{m}_ci_high'], 4)}]"
                )
                row += [r[f"{m}_mean"], r[f"{m}_sd"], r[f"{m}_median"], ci]
                row += [r[f"{m}_cv"], r[f"{m}_outliers"]]
            row += [r["accuracy_mean"], r["failed"], r["timeout"]]
            body.append(row)
        return f"Summary by {', '.join(self.by) or '(all trials)'}{where}\n" + render_table(
            headers, body
        )


def summarize(
    db: Database,
    *,
    by: Sequence[str] = DEFAULT_BY,
    metrics: Sequence[str] = DEFAULT_METRICS,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> SummaryResult:
    """Per-configuration n, mean, sd, median and 95% t CI of each metric over ok trials, mean
    accuracy, and counts of failed and timed-out trials."""
    by = check_distinct(by, "--by")
    metrics = check_distinct(metrics, "--metric")
    if not metrics:
        raise AnalysisError("no --metric given; name at least one, e.g. --metric train_s")
    with connect(db) as con:
        sel = select(
            con,
            metric=None,
            group=by,
            group_option="--by",
            where=where,
            include_warmup=include_warmup,
            only_ok=False,
        )
        for m in metrics:
            check_column(sel.columns, m, "--metric", numeric=True)
        has_acc = "accuracy" in sel.columns and is_numeric_type(sel.columns["accuracy"])
        prefix, partition, group_by, order_by = _group_sql(by)
        ok = "status = 'ok'"
        inner = [quote(b) for b in by] + ([] if "status" in by else ["status"])
        outer = [f"count(*) FILTER (WHERE {ok})"]
        for i, m in enumerate(metrics):
            x = f"CAST({quote(m)} AS DOUBLE)"
            shift = f"min({x}) FILTER (WHERE {ok}) OVER ({partition})"
            inner += [f"{x} AS x{i}", f"{x} - {shift} AS d{i}", f"{shift} AS s{i}"]
            xo = f"CASE WHEN {ok} THEN {x} END"
            inner += [
                f"quantile_cont({xo}, 0.25) OVER ({partition}) AS q1_{i}",
                f"quantile_cont({xo}, 0.75) OVER ({partition}) AS q3_{i}",
            ]
            okx = f"FILTER (WHERE {ok} AND x{i} IS NOT NULL)"
            fence = f"{TUKEY_K!r} * (q3_{i} - q1_{i})"
            outer += [
                f"count(x{i}) {okx}",
                f"any_value(s{i})",
                f"avg(d{i}) {okx}",
                f"var_samp(d{i}) {okx}",
                f"median(x{i}) {okx}",
                f"mad(x{i}) {okx}",
                f"min(x{i}) {okx}",
                f"max(x{i}) {okx}",
                f"any_value(q1_{i}) {okx}",
                f"any_value(q3_{i}) {okx}",
                f"count(*) FILTER (WHERE {ok} AND (x{i} < q1_{i} - {fence} "
                f"OR x{i} > q3_{i} + {fence}))",
            ]
        if has_acc:
            inner.append("CAST(accuracy AS DOUBLE) AS acc")
            outer.append(f"avg(acc) FILTER (WHERE {ok})")
        else:
            outer.append("NULL")
        outer += ["count(*) FILTER (WHERE status = 'failed')"]
        outer += ["count(*) FILTER (WHERE status = 'timeout')"]
        sql = (
            f"SELECT {prefix}{', '.join(outer)} FROM "
            f"(SELECT {', '.join(inner)} FROM {VIEW}{sel.where_sql}){group_by}{order_by}"
        )
        raw = execute(con, sql, sel.params)
    rows = []
    for rec in raw:
        row: dict[str, Any] = dict(zip(by, rec[: len(by)], strict=True))
        rest = list(rec[len(by) :])
        row["n"] = int(rest.pop(0))
        for m in metrics:
            count, shift, mean_dev, var, median = (rest.pop(0) for _ in range(5))
            mad, low, high, q1, q3, outliers = (rest.pop(0) for _ in range(6))
            mean = math.nan if mean_dev is None else float(shift) + float(mean_dev)
            sd = math.sqrt(var) if var is not None else math.nan
            ci_low, ci_high = (
                t_interval(mean, sd / math.sqrt(count), count - 1, 0.95)
                if count > 1 and not math.isnan(sd)
                else (math.nan, math.nan)
            )
            row[f"{m}_mean"] = mean
            row[f"{m}_sd"] = sd
            row[f"{m}_median"] = _nan(median)
            row[f"{m}_ci_low"] = ci_low
            row[f"{m}_ci_high"] = ci_high
            row[f"{m}_mad"] = _nan(mad)
            row[f"{m}_min"] = _nan(low)
            row[f"{m}_max"] = _nan(high)
            row[f"{m}_cv"] = sd / abs(mean) if mean and not math.isnan(sd) else math.nan
            row[f"{m}_q1"] = _nan(q1)
            row[f"{m}_q3"] = _nan(q3)
            row[f"{m}_outliers"] = int(outliers)
        row["accuracy_mean"] = _nan(rest.pop(0))
        row["failed"] = int(rest.pop(0))
        row["timeout"] = int(rest.pop(0))
        total = row["n"] + row["failed"] + row["timeout"]
        row["failure_rate"] = (row["failed"] + row["timeout"]) / total if total else math.nan
        rows.append(row)
    return SummaryResult(by=by, metrics=metrics, rows=tuple(rows), where=sel.where_text)


# -- box plots --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxStats:
    """Tukey box: quartiles (linear interpolation), whiskers at the most extreme data within
    1.5 IQR of the quartiles, and the points beyond them."""

    label: str
    n: int
    q1: float
    median: float
    q3: float
    whislo: float
    whishi: float
    fliers: tuple[float, ...]


@dataclass(frozen=True)
class BoxStatsResult:
    metric: str
    by: tuple[str, ...]
    boxes: tuple[BoxStats, ...]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "by": list(self.by),
            "boxes": [{**asdict(b), "fliers": list(b.fliers)} for b in self.boxes],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per box; ``fliers`` holds a list."""
        import pandas as pd

        return pd.DataFrame(
            [{**asdict(b), "fliers": list(b.fliers)} for b in self.boxes],
            columns=["label", "n", "q1", "median", "q3", "whislo", "whishi", "fliers"],
        )

    def __str__(self) -> str:
        return f"Box statistics of {self.metric}\n" + render_table(
            ["box", "n", "whislo", "q1", "median", "q3", "whishi", "fliers"],
            [
                (b.label, b.n, b.whislo, b.q1, b.median, b.q3, b.whishi, len(b.fliers))
                for b in self.boxes
            ],
        )


def _label(by: Sequence[str], values: Sequence[Any], columns: dict[str, str]) -> str:
    if not by:
        return "all trials"
    parts = []
    for name, value in zip(by, values, strict=True):
        text = format_level(value)
        plain = columns[name].upper() == "VARCHAR" and value is not None
        parts.append(text if plain else f"{name}={text}")
    return " / ".join(parts)


def box_stats(
    db: Database,
    *,
    by: Sequence[str] = ("engine", "workload", "workers"),
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> BoxStatsResult:
    """Tukey box-plot statistics of ``metric`` per combination of ``by`` (as matplotlib's
    ``cbook.boxplot_stats`` with ``whis=1.5``), computed in DuckDB."""
    by = check_distinct(by, "--by")
    with connect(db) as con:
        sel = select(
            con,
            metric=metric,
            group=by,
            group_option="--by",
            where=where,
            include_warmup=include_warmup,
        )
        cols = [quote(b) for b in by]
        m = quote(metric)
        base_where = sel.where_and(f"{m} IS NOT NULL")
        prefix, _, group_by, _ = _group_sql(by)
        q_cols = ", ".join(f"q.{c}" for c in cols)
        join = " AND ".join(f"b.{c} IS NOT DISTINCT FROM q.{c}" for c in cols) or "true"
        order = (" ORDER BY " + ", ".join(f"q.{c} NULLS LAST" for c in cols)) if by else ""
        sql = f"""
            WITH b AS (SELECT {prefix}CAST({m} AS DOUBLE) AS x FROM {VIEW}{base_where}),
            q AS (
                SELECT {prefix}count(*) AS n, quantile_cont(x, 0.25) AS q1,
                       quantile_cont(x, 0.5) AS med, quantile_cont(x, 0.75) AS q3
                FROM b{group_by}
            ),
            f AS (SELECT *, q1 - 1.5 * (q3 - q1) AS lo, q3 + 1.5 * (q3 - q1) AS hi FROM q)
            SELECT {q_cols + ", " if by else ""}q.n, q.q1, q.med, q.q3,
                   min(b.x) FILTER (WHERE b.x >= q.lo), max(b.x) FILTER (WHERE b.x <= q.hi),
                   list(b.x ORDER BY b.x) FILTER (WHERE b.x < q.lo OR b.x > q.hi)
            FROM f AS q JOIN b ON {join}
            GROUP BY ALL{order}
        """
        raw = execute(con, sql, sel.params)
    boxes = []
    for rec in raw:
        values, (n, q1, med, q3, lo, hi, fliers) = rec[: len(by)], rec[len(by) :]
        q1, q3 = float(q1), float(q3)
        whislo = q1 if lo is None or lo > q1 else float(lo)
        whishi = q3 if hi is None or hi < q3 else float(hi)
        boxes.append(
            BoxStats(
                label=_label(by, values, sel.columns),
                n=int(n),
                q1=q1,
                median=float(med),
                q3=q3,
                whislo=whislo,
                whishi=whishi,
                fliers=tuple(float(v) for v in fliers or ()),
            )
        )
    return BoxStatsResult(metric=metric, by=by, boxes=tuple(boxes))


# -- runs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """One runner invocation or import, with its trial count and experiment names."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    source: str
    argv: list[str]
    env: dict
    n_trials: int
    experiments: tuple[str, ...]


def _json_value(text: Any, default: Any) -> Any:
    if text is None:
        return default
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return default
    return text


def list_runs(db: Database) -> tuple[RunInfo, ...]:
    """All runs in the database, oldest first."""
    with connect(db) as con:
        raw = con.execute(
            """
            SELECT r.run_id, r.started_at, r.finished_at, r.source, r.argv, r.env,
                   count(t.trial_id),
                   list(DISTINCT t.experiment ORDER BY t.experiment)
                       FILTER (WHERE t.experiment IS NOT NULL)
            FROM runs r LEFT JOIN trials t USING (run_id)
            GROUP BY ALL
            ORDER BY r.started_at, r.run_id
            """
        ).fetchall()
    return tuple(
        RunInfo(
            run_id=run_id,
            started_at=started,
            finished_at=finished,
            source=source,
            argv=list(_json_value(argv, [])),
            env=dict(_json_value(env, {})),
            n_trials=int(n),
            experiments=tuple(exps or ()),
        )
        for run_id, started, finished, source, argv, env, n, exps in raw
    )
