"""Descriptive statistics per configuration (the box-plot statistics and the list of runs, once
here, live in :mod:`analysis.boxstats` and :mod:`analysis.runs` and are importable from here).

All aggregation happens in DuckDB; Python only receives one row per group (and for the median's
bootstrap interval the few sorted values near each median). The result object, its text and its
tables are in :mod:`analysis.summary_result`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analysis.bootstrap import (
    group_rng,
    median_ranks,
    median_window,
    medians_from_ranks,
    percentile_interval,
)
from analysis.boxstats import TUKEY_K, BoxStats, BoxStatsResult, box_stats
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
    format_level,
    is_numeric_type,
    quote,
    select,
)
from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError
from analysis.intervals import t_interval
from analysis.options import CONFIDENCE, DEFAULT_SEED, N_BOOT, check_bootstrap, check_seed
from analysis.runs import RunInfo, list_runs
from analysis.smallsample import small_sample_note
from analysis.summary_result import (
    GEOMETRIC_SUFFIXES,
    STAT_SUFFIXES,
    SummaryResult,
    below_zero_note,
)

if TYPE_CHECKING:
    import duckdb
    import numpy as np

__all__ = [
    "DEFAULT_BY",
    "DEFAULT_METRICS",
    "GEOMETRIC_SUFFIXES",
    "STAT_SUFFIXES",
    "TUKEY_K",
    "BoxStats",
    "BoxStatsResult",
    "RunInfo",
    "SummaryResult",
    "box_stats",
    "list_runs",
    "summarize",
]


def _group_sql(by: Sequence[str]) -> tuple[str, str, str, str]:
    """(select-list prefix, PARTITION BY clause, GROUP BY clause, ORDER BY clause)."""
    if not by:
        return "", "", "", ""
    cols = ", ".join(quote(b) for b in by)
    order = ", ".join(f"{quote(b)} NULLS LAST" for b in by)
    return f"{cols}, ", f"PARTITION BY {cols}", f" GROUP BY {cols}", f" ORDER BY {order}"


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def summarize(
    db: Database,
    *,
    by: Sequence[str] = DEFAULT_BY,
    metrics: Sequence[str] = DEFAULT_METRICS,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    n_boot: int = N_BOOT,
    seed: int = DEFAULT_SEED,
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
    n_boot, seed = check_bootstrap(n_boot), check_seed(seed)
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
    below = below_zero_note(rows, metrics, labels)
    return SummaryResult(
        by=by,
        metrics=metrics,
        rows=tuple(rows),
        where=sel.where_text,
        n_boot=n_boot,
        seed=seed,
        notes=tuple(n for n in (below, few) if n),
    )


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
                ci_low, ci_high = t_interval(mean, se, count - 1, CONFIDENCE)
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
        low, high = t_interval(float(log_mean), se, count - 1, CONFIDENCE)
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
            low, high = percentile_interval(medians, CONFIDENCE)
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
