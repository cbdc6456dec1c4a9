"""Descriptive statistics per configuration, box-plot statistics and the list of runs.

All aggregation happens in DuckDB; Python only receives one row per group (plus box-plot
fliers, and for the median's bootstrap interval the few sorted values near each median).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analysis.bootstrap import (
    group_rng,
    median_ranks,
    median_window,
    medians_from_ranks,
    percentile_interval,
)
from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    check_column,
    check_distinct,
    connect,
    execute,
    finite_check,
    fmt,
    format_level,
    frame_to_latex,
    is_numeric_type,
    quote,
    render_table,
    select,
)
from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError
from analysis.intervals import t_interval
from analysis.latex import latex_escape
from analysis.smallsample import MIN_TRIALS, small_sample_note

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd

STAT_SUFFIXES = (
    "mean",
    "sd",
    "median",
    "ci_low",
    "ci_high",
    "median_ci_low",
    "median_ci_high",
    "mad",
    "min",
    "max",
    "cv",
    "q1",
    "q3",
    "outliers",
)
#: The geometric mean and its interval (rows hold them; ``table_frame`` adds them).
GEOMETRIC_SUFFIXES = ("gmean", "gmean_ci_low", "gmean_ci_high")
#: Confidence level of the summary's intervals (t for the mean, bootstrap for the median).
CONFIDENCE_LEVEL = 0.95
#: Default number of bootstrap draws for the median's interval.
N_BOOT = 2000
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
    n_boot: int = N_BOOT
    seed: int = 0
    notes: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        """The by columns, ``n``, per metric ``<metric>_`` mean, sd, median, ci_low, ci_high
        (95% t interval of the mean), median_ci_low, median_ci_high (95% percentile-bootstrap
        interval of the median: ``n_boot`` draws, ``seed``; NaN for fewer than 2 trials or
        ``n_boot == 0``), mad (median absolute deviation, unscaled), min, max, cv (sd / mean),
        q1, q3 (linear interpolation) and outliers (count beyond Tukey's fences), then
        ``accuracy_mean``, ``failed``, ``timeout`` and ``failure_rate`` ((failed + timeout) /
        all trials)."""
        cols = [*self.by, "n"]
        for m in self.metrics:
            cols += [f"{m}_{s}" for s in STAT_SUFFIXES]
        return [*cols, "accuracy_mean", "failed", "timeout", "failure_rate"]

    def to_dict(self) -> dict:
        return {
            "by": list(self.by),
            "metrics": list(self.metrics),
            "where": list(self.where),
            "n_boot": self.n_boot,
            "seed": self.seed,
            "rows": [dict(r) for r in self.rows],
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([dict(r) for r in self.rows], columns=self.columns)

    def table_frame(self) -> pd.DataFrame:
        """What ``--format csv`` prints: :meth:`to_frame`, then per metric ``<metric>_gmean``,
        ``<metric>_gmean_ci_low`` and ``<metric>_gmean_ci_high`` (geometric mean and the t
        interval of ``ln x`` taken back by ``exp``; NaN unless every value is > 0), then
        ``sample_note`` (the
        small-sample warning of a row with fewer than ``MIN_TRIALS`` ok trials, else empty)."""
        frame = self.to_frame()
        for m in self.metrics:
            for suffix in GEOMETRIC_SUFFIXES:
                frame[f"{m}_{suffix}"] = [r.get(f"{m}_{suffix}", math.nan) for r in self.rows]
        frame["sample_note"] = [_few_text(r["n"]) for r in self.rows]
        return frame

    def to_latex(self) -> str:
        """:meth:`table_frame` as a tabular, then the notes."""
        body = frame_to_latex(self.table_frame())
        return "\n\n".join([body, *(latex_escape(n) for n in self.notes)])

    def positive(self, metric: str) -> bool:
        """True when every value of ``metric`` is > 0 (a time, a throughput): its interval is
        then the geometric one, which cannot reach below 0."""
        has = [r for r in self.rows if not math.isnan(r[f"{metric}_mean"])]
        return bool(has) and all(not math.isnan(r.get(f"{metric}_gmean", math.nan)) for r in has)

    def __str__(self) -> str:
        where = f" (where {' '.join(self.where)})" if self.where else ""
        headers = [*self.by, "n"]
        positive = {m: self.positive(m) for m in self.metrics}
        for m in self.metrics:
            headers += [f"{m} mean", *(["geomean"] if positive[m] else []), "95% CI"]
            headers += ["sd", "median", "95% CI", "cv", "outliers"]
        headers += ["accuracy", "failed", "timeout"]
        body = []
        for r in self.rows:
            row: list[Any] = [format_level(r[b]) for b in self.by] + [r["n"]]
            for m in self.metrics:
                row.append(r[f"{m}_mean"])
                if positive[m]:
                    row += [r[f"{m}_gmean"], _interval(r[f"{m}_gmean_ci_low"],
                                                       r[f"{m}_gmean_ci_high"])]  # fmt: skip
                else:
                    row.append(_interval(r[f"{m}_ci_low"], r[f"{m}_ci_high"]))
                row += [r[f"{m}_sd"], r[f"{m}_median"]]
                row += [_interval(r[f"{m}_median_ci_low"], r[f"{m}_median_ci_high"])]
                row += [r[f"{m}_cv"], r[f"{m}_outliers"]]
            row += [r["accuracy_mean"], r["failed"], r["timeout"]]
            body.append(row)
        boot = (
            f"median CI: percentile bootstrap, {self.n_boot} draws, seed {self.seed}"
            if self.n_boot
            else "median CI: none (n_boot 0)"
        )
        logs = [m for m in self.metrics if positive[m]]
        plain = [m for m in self.metrics if not positive[m]]
        mean_ci = []
        if logs:
            mean_ci.append(
                f"CI of the geometric mean of {', '.join(logs)}: t on ln x, taken back by exp "
                "(all values > 0; never below 0; the mean's t interval is in --format csv/json)"
            )
        if plain:
            mean_ci.append(f"mean CI of {', '.join(plain)}: t")
        return (
            f"Summary by {', '.join(self.by) or '(all trials)'}{where}\n"
            + render_table(headers, body)
            + f"\n{'; '.join(mean_ci)}; {boot}"
            + "".join(f"\nnote: {n}" for n in self.notes)
        )


def _few_text(n: int) -> str:
    return f"few trials ({n} < {MIN_TRIALS})" if n < MIN_TRIALS else ""


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) or math.isnan(high) else f"[{fmt(low, 4)}, {fmt(high, 4)}]"


def summarize(
    db: Database,
    *,
    by: Sequence[str] = DEFAULT_BY,
    metrics: Sequence[str] = DEFAULT_METRICS,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> SummaryResult:
    """Per-configuration n, mean, sd, median, 95% t CI of the mean and 95% percentile-bootstrap
    CI of the median of each metric over ok trials, mean accuracy, and counts of failed and
    timed-out trials.

    The median's interval uses ``n_boot`` bootstrap draws (0: no interval) from ``seed``; each
    (metric, configuration) has its own stream derived from ``seed``, the metric and the
    configuration's levels, so a row's interval does not depend on the other rows. The draws are
    simulated exactly from order statistics (:mod:`analysis.bootstrap`): DuckDB returns only the
    few sorted values near each median, never the rows.
    """
    by = check_distinct(by, "--by")
    metrics = check_distinct(metrics, "--metric")
    if not metrics:
        raise AnalysisError("no --metric given; name at least one, e.g. --metric train_s")
    _check_bootstrap(n_boot, seed)
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
        finite_check(con, sel, metrics, extra=["status = 'ok'"] if "status" in sel.columns else [])
        has_acc = "accuracy" in sel.columns and is_numeric_type(sel.columns["accuracy"])
        prefix, partition, group_by, order_by = _group_sql(by)
        ok = "status = 'ok'"
        inner = [quote(b) for b in by] + ([] if "status" in by else ["status"])
        outer = [f"count(*) FILTER (WHERE {ok})"]
        scales = []
        for i, m in enumerate(metrics):
            x = f"CAST({quote(m)} AS DOUBLE)"
            shift = f"min({x}) FILTER (WHERE {ok}) OVER ({partition})"
            inner += [f"{x} AS __x{i}", f"{x} - {shift} AS __d{i}", f"{shift} AS __s{i}"]
            xo = f"CASE WHEN {ok} THEN {x} END"
            inner += [
                f"quantile_cont({xo}, 0.25) OVER ({partition}) AS __q1_{i}",
                f"quantile_cont({xo}, 0.75) OVER ({partition}) AS __q3_{i}",
            ]
            okx = f"FILTER (WHERE {ok} AND __x{i} IS NOT NULL)"
            fence = f"{TUKEY_K!r} * (__q3_{i} - __q1_{i})"
            # scale before squaring: the deviations over a power of two near their largest
            # (exact), so values up to 1e308 have a finite variance of the scaled values
            big = f"max(abs(__d{i})) FILTER (WHERE {ok}) OVER ({partition})"
            scales.append(
                f"CASE WHEN coalesce({big}, 0) = 0 THEN 1.0 "
                f"ELSE pow(2.0, floor(log2({big}))) END AS __k{i}"
            )
            outer += [
                f"count(__x{i}) {okx}",
                f"any_value(__s{i})",
                f"any_value(__k{i})",
                f"avg(__d{i} / __k{i}) {okx}",
                f"var_samp(__d{i} / __k{i}) {okx}",
                f"median(__x{i}) {okx}",
                f"mad(__d{i}) {okx}",
                f"min(__x{i}) {okx}",
                f"max(__x{i}) {okx}",
                f"any_value(__q1_{i}) {okx}",
                f"any_value(__q3_{i}) {okx}",
                f"count(*) FILTER (WHERE {ok} AND (__x{i} < __q1_{i} - {fence} "
                f"OR __x{i} > __q3_{i} + {fence}))",
                # log scale, as ln(x / min): no digits lost to the offset of ln(min)
                f"count(*) FILTER (WHERE {ok} AND __x{i} <= 0)",
                f"avg(CASE WHEN __s{i} > 0 THEN ln(__x{i} / __s{i}) END) {okx}",
                f"var_samp(CASE WHEN __s{i} > 0 THEN ln(__x{i} / __s{i}) END) {okx}",
            ]
        if has_acc:
            inner.append("CAST(accuracy AS DOUBLE) AS __acc")
            outer.append(f"avg(__acc) FILTER (WHERE {ok})")
        else:
            outer.append("NULL")
        outer += ["count(*) FILTER (WHERE status = 'failed')"]
        outer += ["count(*) FILTER (WHERE status = 'timeout')"]
        sql = (
            f"SELECT {prefix}{', '.join(outer)} FROM "
            f"(SELECT *, {', '.join(scales)} FROM "
            f"(SELECT {', '.join(inner)} FROM {VIEW}{sel.where_sql})){group_by}{order_by}"
        )
        raw = execute(con, sql, sel.params)
        rows, counts = _summary_rows(raw, by, metrics)
        if n_boot > 0:
            _median_intervals(con, sel, by, metrics, rows, counts, n_boot=n_boot, seed=seed)
    labels = [", ".join(f"{b}={format_level(r[b])}" for b in by) or "all trials" for r in rows]
    few = small_sample_note([(label, r["n"]) for label, r in zip(labels, rows, strict=True)])
    return SummaryResult(
        by=by,
        metrics=metrics,
        rows=tuple(rows),
        where=sel.where_text,
        n_boot=n_boot,
        seed=seed,
        notes=(few,) if few else (),
    )


def _check_bootstrap(n_boot: int, seed: int) -> None:
    if n_boot < 0:
        raise AnalysisError(f"--bootstrap {n_boot} must be 0 (no median intervals) or more")
    if 0 < n_boot < 100:
        raise AnalysisError(
            f"--bootstrap {n_boot} is too few draws for a percentile interval; use {N_BOOT} "
            "(the default), or 0 for no median intervals"
        )
    if seed < 0:
        raise AnalysisError(f"--seed {seed} must be 0 or more")


def _summary_rows(
    raw: Sequence[tuple], by: Sequence[str], metrics: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """Rows of the summary from the main query, and per metric the number of ok trials with a
    value in each row."""
    rows = []
    counts: dict[str, list[int]] = {m: [] for m in metrics}
    for rec in raw:
        row: dict[str, Any] = dict(zip(by, rec[: len(by)], strict=True))
        rest = list(rec[len(by) :])
        row["n"] = int(rest.pop(0))
        for m in metrics:
            count, shift, scale, mean_dev, var, median = (rest.pop(0) for _ in range(6))
            mad, low, high, q1, q3, outliers = (rest.pop(0) for _ in range(6))
            counts[m].append(int(count))
            k = 1.0 if scale is None else float(scale)
            mean = math.nan if mean_dev is None else float(shift) + float(mean_dev) * k
            sd = math.sqrt(var) * k if var is not None else math.nan
            if count > 1 and not math.isnan(sd):
                se = sd / math.sqrt(count)
                ci_low, ci_high = t_interval(mean, se, count - 1, CONFIDENCE_LEVEL)
            else:
                ci_low, ci_high = math.nan, math.nan
            row[f"{m}_mean"] = mean
            row[f"{m}_sd"] = sd
            row[f"{m}_median"] = _nan(median)
            row[f"{m}_ci_low"] = ci_low
            row[f"{m}_ci_high"] = ci_high
            row[f"{m}_median_ci_low"] = row[f"{m}_median_ci_high"] = math.nan  # filled later
            row[f"{m}_mad"] = _nan(mad)
            row[f"{m}_min"] = _nan(low)
            row[f"{m}_max"] = _nan(high)
            row[f"{m}_cv"] = sd / abs(mean) if mean and not math.isnan(sd) else math.nan
            row[f"{m}_q1"] = _nan(q1)
            row[f"{m}_q3"] = _nan(q3)
            row[f"{m}_outliers"] = int(outliers)
            nonpositive, log_mean, log_var = (rest.pop(0) for _ in range(3))
            row.update(_geometric(m, count, shift, nonpositive, log_mean, log_var))
        row["accuracy_mean"] = _nan(rest.pop(0))
        row["failed"] = int(rest.pop(0))
        row["timeout"] = int(rest.pop(0))
        total = row["n"] + row["failed"] + row["timeout"]
        row["failure_rate"] = (row["failed"] + row["timeout"]) / total if total else math.nan
        rows.append(row)
    return rows, counts


def _geometric(
    m: str, count: int, shift: Any, nonpositive: int, log_mean: Any, log_var: Any
) -> dict[str, float]:
    """``<m>_gmean`` and its interval ``<m>_gmean_ci_low/high``: the t interval of the mean of
    ``ln x`` taken back by ``exp`` (never below 0), from ``ln(x / min)``'s mean and variance;
    NaN unless every value is > 0 (and, for the interval, there are 2 or more)."""
    out = dict.fromkeys((f"{m}_gmean", f"{m}_gmean_ci_low", f"{m}_gmean_ci_high"), math.nan)
    if nonpositive or not count or log_mean is None or not shift > 0:
        return out
    out[f"{m}_gmean"] = float(shift) * math.exp(float(log_mean))
    if count > 1 and log_var is not None:
        se = math.sqrt(max(float(log_var), 0.0) / count)
        low, high = t_interval(float(log_mean), se, count - 1, CONFIDENCE_LEVEL)
        out[f"{m}_gmean_ci_low"] = float(shift) * math.exp(low)
        out[f"{m}_gmean_ci_high"] = float(shift) * math.exp(high)
    return out


def _median_intervals(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    by: Sequence[str],
    metrics: Sequence[str],
    rows: list[dict[str, Any]],
    counts: dict[str, list[int]],
    *,
    n_boot: int,
    seed: int,
) -> None:
    """Fill ``<metric>_median_ci_low/high`` of ``rows`` (rows with at least 2 values).

    One query fetches, per (metric, row), the sorted values in :func:`median_window`'s rank
    window; the bootstrap medians' ranks are then drawn from the row's own stream, one row at a
    time (memory: one row's draws). A row whose draws leave the window (probability below
    1e-20) is fetched whole and drawn again from the same stream, so the result is exact.
    """
    wanted = {
        (i, j): median_window(counts[m][i])
        for j, m in enumerate(metrics)
        for i in range(len(rows))
        if counts[m][i] >= 2
    }
    while wanted:
        fetched = _order_statistics(con, sel, by, metrics, rows, wanted)
        missed: dict[tuple[int, int], tuple[int, int]] = {}
        for (i, j), (first, last) in wanted.items():
            m, row = metrics[j], rows[i]
            key = [m, [[b, format_level(row[b])] for b in by]]
            lo, hi = median_ranks(counts[m][i], n_boot, group_rng(seed, key))
            if lo.min() < first or hi.max() > last:
                missed[i, j] = (1, counts[m][i])
                continue
            medians = medians_from_ranks(fetched[i, j], first, lo, hi)
            low, high = percentile_interval(medians, CONFIDENCE_LEVEL)
            row[f"{m}_median_ci_low"], row[f"{m}_median_ci_high"] = low, high
        wanted = missed


def _order_statistics(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    by: Sequence[str],
    metrics: Sequence[str],
    rows: Sequence[dict[str, Any]],
    windows: dict[tuple[int, int], tuple[int, int]],
) -> dict[tuple[int, int], np.ndarray]:
    """The sorted values of ok trials with ranks ``first..last`` (1-based) of metric ``j`` in
    row ``i``, for each ``(i, j): (first, last)`` of ``windows``, as float arrays.

    DuckDB sorts each group's values into a list and returns only the slices. The rows are
    matched by position: this query groups the same selection by ``by`` and orders the groups
    as the summary does (``__gid``; aliases start with ``__`` so no ``by`` column is shadowed).
    """
    import numpy as np

    prefix, _, group_by, order_by = _group_sql(by)
    ok = "status = 'ok'"
    inner = [quote(b) for b in by] + ([] if "status" in by else ["status"])
    inner += [f"CAST({quote(m)} AS DOUBLE) AS __x{j}" for j, m in enumerate(metrics)]
    lists = [
        f"list(__x{j} ORDER BY __x{j}) FILTER (WHERE {ok} AND __x{j} IS NOT NULL) AS __xs{j}"
        for j in range(len(metrics))
    ]
    bound = ", ".join(
        f"?::BIGINT[] AS __lo{j}, ?::BIGINT[] AS __hi{j}" for j in range(len(metrics))
    )
    slices = [f"__xs{j}[__p.__lo{j}[__gid]:__p.__hi{j}[__gid]]" for j in range(len(metrics))]
    sql = (
        f"WITH __p AS (SELECT {bound}) "
        f"SELECT {prefix}{', '.join(slices)} FROM ("
        f"SELECT {prefix}row_number() OVER ({order_by.strip()}) AS __gid, {', '.join(lists)} "
        f"FROM (SELECT {', '.join(inner)} FROM {VIEW}{sel.where_sql}){group_by}"
        f"), __p ORDER BY __gid"
    )
    bounds: list[list[int]] = []
    for j in range(len(metrics)):
        first, last = [1] * len(rows), [0] * len(rows)  # [1:0]: an empty slice
        for (i, jj), (lo, hi) in windows.items():
            if jj == j:
                first[i], last[i] = lo, hi
        bounds += [first, last]
    raw = execute(con, sql, [*bounds, *sel.params])
    levels = [[format_level(row[b]) for b in by] for row in rows]
    if [[format_level(v) for v in rec[: len(by)]] for rec in raw] != levels:
        raise RuntimeError("the order-statistics query returned other groups than the summary")
    out = {}
    for (i, j), (lo, hi) in windows.items():
        values = np.asarray(raw[i][len(by) + j], dtype=float)
        if len(values) != hi - lo + 1:
            raise RuntimeError(f"ranks {lo}..{hi} of {metrics[j]} are not all in row {i}")
        out[i, j] = values
    return out


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
        finite_check(con, sel, [metric])
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
            f AS (SELECT *, q1 - {TUKEY_K!r} * (q3 - q1) AS lo, q3 + {TUKEY_K!r} * (q3 - q1) AS hi
                  FROM q)
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
