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

from analysis import query
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
    format_level,
    is_numeric_type,
    nonfinite_message,
    quote,
    select,
)
from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError
from analysis.intervals import t_interval
from analysis.options import CONFIDENCE, DEFAULT_SEED, N_BOOT, check_bootstrap, check_seed
from analysis.runs import RunInfo, list_runs, trial_rows
from analysis.smallsample import small_sample_note
from analysis.summary_result import (
    GEOMETRIC_SUFFIXES,
    STAT_SUFFIXES,
    SummaryResult,
    below_zero_note,
)
from analysis.summary_tails import (
    held_stats,
    median_draws,
    tail_aggregates,
    tail_ranges,
    tail_values,
    tails,
)

if TYPE_CHECKING:
    import duckdb

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
    "summarize_with_boxes",
]


def _order_sql(by: Sequence[str]) -> str:
    """`` ORDER BY`` the ``by`` columns, NULLs last (empty without ``by``)."""
    if not by:
        return ""
    return " ORDER BY " + ", ".join(f"{quote(b)} NULLS LAST" for b in by)


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


#: Above :data:`analysis.query.HELD_MAX` values of the selection's metrics (rows of the store
#: times metrics), quartiles and MADs, which DuckDB computes holding every value of a
#: configuration, are taken a batch of configurations at a time, of at most BATCH_VALUES values
#: each (quantile_cont and mad each hold them: 2 x 8M DOUBLEs stay within DuckDB's 500 MB).
BATCH_VALUES = 8_000_000


#: Per metric, the values :func:`_first_pass` returns after the three non-finite counts.
_FIRST = ("count", "low", "high", "quartiles", "nonpositive")


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
    few values near each median, never the rows.

    Two scans of the selection, each a plain ``GROUP BY`` (no window function): counts,
    extremes, quartiles and the non-finite check; then the moments of the values shifted by
    each configuration's minimum (:func:`analysis.query.moments`), the MAD, the log moments and,
    against each configuration's quartiles, the Tukey outliers and the values near each median
    for its bootstrap interval (a configuration whose guessed range misses its drawn ranks is
    fetched whole in one more scan). For a store of more than
    :data:`analysis.query.HELD_MAX` metric values, the quartiles and MADs (DuckDB holds a
    configuration's values for them) come from further scans, a batch of configurations each
    (:func:`analysis.summary_tails.held_stats`), so memory stays bounded, and the outliers and
    median values from a scan of their own.
    """
    result, _ = _summarize(
        db,
        by=by,
        metrics=metrics,
        where=where,
        include_warmup=include_warmup,
        n_boot=n_boot,
        seed=seed,
        box_metric=None,
    )
    return result


def summarize_with_boxes(
    db: Database,
    *,
    by: Sequence[str] = DEFAULT_BY,
    metrics: Sequence[str] = DEFAULT_METRICS,
    box_metric: str,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    n_boot: int = N_BOOT,
    seed: int = DEFAULT_SEED,
    spread: bool = True,
) -> tuple[SummaryResult, tuple[dict[str, str], list[tuple[tuple[Any, ...], BoxStats]]]]:
    """:func:`summarize` and the Tukey boxes of ``box_metric`` (one of ``metrics``) per
    configuration, as :func:`analysis.boxstats.keyed_box_stats` with the same ``by`` gives them
    (the view's column types; each box with its ``by`` values as stored, in the same order):
    the summary's own scans find them (its quartiles; whiskers and fliers from its tail
    aggregates), instead of two more scans of the selection.

    With ``spread=False`` the MAD and the geometric mean with its interval are not computed
    (NaN in the rows): DuckDB holds every value of a configuration for the MAD, and the report
    shows neither; every other field is :func:`summarize`'s."""
    if box_metric not in metrics:
        raise AnalysisError(f"box metric {box_metric!r} is not one of the summary's metrics")
    result, boxes = _summarize(
        db,
        by=by,
        metrics=metrics,
        where=where,
        include_warmup=include_warmup,
        n_boot=n_boot,
        seed=seed,
        box_metric=box_metric,
        spread=spread,
    )
    assert boxes is not None
    return result, boxes


def _summarize(
    db: Database,
    *,
    by: Sequence[str],
    metrics: Sequence[str],
    where: Sequence[str | Filter],
    include_warmup: bool,
    n_boot: int,
    seed: int,
    box_metric: str | None,
    spread: bool = True,
) -> tuple[SummaryResult, tuple[dict[str, str], list[tuple[tuple[Any, ...], BoxStats]]] | None]:
    from analysis.query import moments

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
        has_acc = "accuracy" in sel.columns and is_numeric_type(sel.columns["accuracy"])
        # quartiles and MAD hold a configuration's values in memory: beyond HELD_MAX values
        # they are taken a batch of configurations at a time (same aggregates, same results)
        batched = trial_rows(con) * len(metrics) > query.HELD_MAX
        first = _first_pass(con, sel, by, metrics, has_acc=has_acc, quartiles=not batched)
        # one power-of-two scale per metric (the largest span's) for every configuration; only
        # when it would overflow a configuration's values (1e300 beside spans of 1e-300) does
        # each configuration get its own, the configurations of each scale read in one scan
        scales = [_scale(first, j) for j in range(len(metrics))]
        own = {tuple(rec["key"]): tuple(scales) for rec in first if rec["n"]}
        if any(_overflows(rec, scales) for rec in first if rec["n"]):
            own = {
                tuple(rec["key"]): tuple(_scale([rec], j) for j in range(len(metrics)))
                for rec in first
                if rec["n"]
            }
        shifts = {
            key: tuple(_nan(rec["metrics"][j]["low"]) / own[key][j] for j in range(len(metrics)))
            for rec in first
            if rec["n"]
            for key in [tuple(rec["key"])]
        }
        aggregates = []
        for j in range(len(metrics)):
            if not spread:
                aggregates += ["NULL", "NULL", "NULL"]
                continue
            log = f"CASE WHEN s{j} > 0 THEN ln(x{j} / s{j}) END"
            mad = "NULL" if batched else f"mad(d{j})"
            aggregates += [mad, f"avg({log})", f"var_samp({log})"]
        # the tails' first scan (outliers, whiskers, the values near each median) rides the
        # moments scan when the quartiles are known by now: per configuration its quartiles
        # and the median's range are values of the moments' key table
        index = {tuple(rec["key"]): i for i, rec in enumerate(first) if rec["n"]}
        per_key, draws = None, None
        if not batched:
            pre, counts = _quartile_rows(first, by, metrics)
            draws = median_draws(pre, by, metrics, counts, n_boot, seed)
            ranges = tail_ranges(pre, metrics, counts, draws)
            per_key = {key: tail_values(pre[i], i, metrics, ranges) for key, i in index.items()}
            aggregates += tail_aggregates(
                len(metrics),
                lambda j: f"r{j}",
                lambda k: f"v{k}",
                outliers=True,
                whiskers=box_metric is not None,
            )
        moved = []
        mads = None if not batched else {}
        for group in dict.fromkeys(own.values()):
            keys = {key for key, k in own.items() if k == group}
            moved += moments(
                con,
                sel,
                metrics=metrics,
                keys=by,
                scale=list(group),
                shifts={key: v for key, v in shifts.items() if key in keys},
                aggregates=aggregates,
                where=["status = 'ok'"],
                require="none",
                null_keys=True,
                values=per_key,
            )
            if batched and mads is not None:
                part = [rec for rec in first if tuple(rec["key"]) in keys]
                mads |= held_stats(con, sel, by, metrics, part, group, shifts, BATCH_VALUES)
        if batched and not spread:
            mads = {}
        rows, counts = _summary_rows(first, moved, by, metrics, own, mads)
        whiskers: dict[tuple[int, int], tuple[Any, Any, Any]] | None = (
            None if box_metric is None else {}
        )
        scanned = None
        if per_key is not None:
            scanned = {index[tuple(km.key)]: km.extra[3 * len(metrics) :] for km in moved}
        tails(con, sel, by, metrics, rows, counts, n_boot=n_boot, seed=seed, whiskers=whiskers,
              scanned=scanned, draws=draws)  # fmt: skip
    labels = [", ".join(f"{b}={format_level(r[b])}" for b in by) or "all trials" for r in rows]
    few = small_sample_note([(label, r["n"]) for label, r in zip(labels, rows, strict=True)])
    below = below_zero_note(rows, metrics, labels)
    result = SummaryResult(
        by=by,
        metrics=metrics,
        rows=tuple(rows),
        where=sel.where_text,
        n_boot=n_boot,
        seed=seed,
        notes=tuple(n for n in (below, few) if n),
    )
    if box_metric is None or whiskers is None:
        return result, None
    j = list(metrics).index(box_metric)
    boxes = _boxes(rows, by, box_metric, counts[box_metric], whiskers, j, sel.columns)
    return result, (sel.columns, boxes)


def _boxes(
    rows: Sequence[dict[str, Any]],
    by: Sequence[str],
    m: str,
    counts: Sequence[int],
    whiskers: dict[tuple[int, int], tuple[Any, Any, Any]],
    j: int,
    columns: dict[str, str],
) -> list[tuple[tuple[Any, ...], BoxStats]]:
    """The Tukey box of metric ``m`` (index ``j``) of each row with values, built as
    :mod:`analysis.boxstats` builds it (whiskers at the quartiles when no value lies between
    a quartile and its fence), in its order: ``by`` values ascending, NaN then NULL last."""
    from analysis.boxstats import box_label

    out = []
    for i, row in enumerate(rows):
        if not counts[i]:
            continue
        low, high, beyond = whiskers[i, j]
        q1, q3 = float(row[f"{m}_q1"]), float(row[f"{m}_q3"])
        values = tuple(row[b] for b in by)
        box = BoxStats(
            label=box_label(by, values, columns),
            n=int(counts[i]),
            q1=q1,
            median=float(row[f"{m}_median"]),
            q3=q3,
            whislo=q1 if low is None or low > q1 else float(low),
            whishi=q3 if high is None or high < q3 else float(high),
            fliers=tuple(float(v) for v in beyond or ()),
        )
        out.append((values, box))
    out.sort(key=lambda item: tuple(_key_order(v) for v in item[0]))
    return out


def _key_order(v: Any) -> tuple[int, Any]:
    """``analysis.boxstats``' order of one key column: values ascending, NaN, then NULL."""
    if v is None:
        return (2, 0)
    if isinstance(v, float) and v != v:
        return (1, 0)
    return (0, v)


def _first_pass(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    by: Sequence[str],
    metrics: Sequence[str],
    *,
    has_acc: bool,
    quartiles: bool = True,
) -> list[dict[str, Any]]:
    """Per configuration (all statuses, NULL levels kept, sorted as the summary): ok trials,
    failed, timed out, mean accuracy and per metric the count, min, max, quartiles and values
    <= 0 of ok trials. Applies :func:`analysis.data.finite_check`'s rule (same counts, same
    message) from the same scan. Without ``quartiles`` they are left NULL (for
    :func:`analysis.summary_tails.held_stats` to fill)."""
    nb, nm = len(by), len(metrics)
    status = "status" if "status" in by else "__status"
    inner = [quote(b) for b in by] + ([] if "status" in by else ["status AS __status"])
    inner += [f"CAST({quote(m)} AS DOUBLE) AS __x{j}" for j, m in enumerate(metrics)]
    every = " AND ".join(f"__x{j} IS NOT NULL" for j in range(nm))
    # one group per (configuration, status): no FILTER on the status, and the ok group's
    # aggregates are the ok trials'
    aggs = ["count(*)", f"count_if({every})"]
    for j in range(nm):
        x = f"__x{j}"
        aggs += [
            f"count_if({every} AND NOT isfinite({x}))",
            f"count({x})",
            f"min({x})",
            f"max({x})",
            f"quantile_cont({x}, [0.25, 0.5, 0.75])" if quartiles else "NULL",
            f"count_if({x} <= 0)",
        ]
    if has_acc:
        inner.append("CAST(accuracy AS DOUBLE) AS __acc")
        aggs.append("avg(__acc)")
    else:
        aggs.append("NULL")
    keys = [quote(b) for b in by] + ([] if "status" in by else [status])
    order = _order_sql(by)
    if "status" not in by:
        order = f"{order}, __status" if order else " ORDER BY __status"
    sql = (
        f"SELECT {', '.join(keys)}, {', '.join(aggs)} FROM "
        f"(SELECT {', '.join(inner)} FROM {VIEW}{sel.where_sql}) GROUP BY {', '.join(keys)}{order}"
    )
    st = by.index("status") if "status" in by else nb
    out: list[dict[str, Any]] = []
    n_every, nonfinite = 0, 0
    for rec in execute(con, sql, sel.params):
        key, rest = tuple(rec[:nb]), list(rec[nb + (0 if "status" in by else 1) :])
        if not out or out[-1]["key"] != key:
            empty = dict.fromkeys(_FIRST, None) | {"count": 0, "nonpositive": 0}
            out.append({"key": key, "n": 0, "accuracy": None, "failed": 0, "timeout": 0,
                        "metrics": [dict(empty) for _ in metrics]})  # fmt: skip
        row, count = out[-1], int(rest[0])
        if rec[st] == "failed":
            row["failed"] = count
        elif rec[st] == "timeout":
            row["timeout"] = count
        if rec[st] != "ok":
            continue
        row["n"] = count
        n_every += int(rest[1])
        for j in range(nm):
            bad, *got = rest[2 + 6 * j : 8 + 6 * j]
            nonfinite += int(bad)
            row["metrics"][j] = dict(zip(_FIRST, got, strict=True))
        row["accuracy"] = rest[2 + 6 * nm]
    if nonfinite:
        _nonfinite_error(con, sel, metrics, n_every)
    return out


def _nonfinite_error(
    con: duckdb.DuckDBPyConnection, sel: Selection, metrics: Sequence[str], n_every: int
) -> None:
    """Raise :func:`analysis.data.finite_check`'s refusal (NaN, +inf, -inf counted apart over
    the ok trials with every metric) for the first metric that has such values."""
    xs = [f"CAST({quote(m)} AS DOUBLE)" for m in metrics]
    aggs = []
    for x in xs:
        aggs += [f"count(*) FILTER (WHERE isnan({x}))", f"count(*) FILTER (WHERE {x} = 'inf')",
                 f"count(*) FILTER (WHERE {x} = '-inf')"]  # fmt: skip
    where = sel.where_and("status = 'ok'", *(f"{x} IS NOT NULL" for x in xs))
    counts = execute(con, f"SELECT {', '.join(aggs)} FROM {VIEW}{where}", sel.params)[0]
    for j, m in enumerate(metrics):
        nan, pos, neg = (int(c) for c in counts[3 * j : 3 * j + 3])
        if nan or pos or neg:
            raise AnalysisError(nonfinite_message(m, n_every, nan=nan, pos_inf=pos, neg_inf=neg))
    raise AnalysisError("internal: non-finite values counted but not found")  # pragma: no cover


def _quartile_rows(
    first: Sequence[dict[str, Any]], by: Sequence[str], metrics: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """Per record of :func:`_first_pass`, the summary row's ``by`` values and quartiles of each
    metric (as :func:`_summary_rows` sets them), and per metric the counts: what the tails'
    draws, ranges and fences are made of, before the moments scan."""
    rows: list[dict[str, Any]] = []
    counts: dict[str, list[int]] = {m: [] for m in metrics}
    for rec in first:
        row: dict[str, Any] = dict(zip(by, rec["key"], strict=True))
        for j, m in enumerate(metrics):
            got = rec["metrics"][j]
            counts[m].append(int(got["count"]))
            q1, median, q3 = got["quartiles"] or (None, None, None)
            row[f"{m}_q1"], row[f"{m}_median"], row[f"{m}_q3"] = _nan(q1), _nan(median), _nan(q3)
        rows.append(row)
    return rows, counts


def _overflows(rec: dict[str, Any], scales: Sequence[float]) -> bool:
    """True when the metrics' scales do not suit configuration ``rec``: a value divided by its
    scale is not finite, or its (nonzero) span divided by it is below 2**-400, where the
    squares of the deviations would underflow."""
    for j, k in enumerate(scales):
        got = rec["metrics"][j]
        if not got["count"]:
            continue
        low, high = float(got["low"]), float(got["high"])
        if not (math.isfinite(low) and math.isfinite(high)):
            continue
        if not (math.isfinite(low / k) and math.isfinite(high / k)):
            return True
        if 0 < high - low < math.ldexp(k, -400):
            return True
    return False


def _scale(first: Sequence[dict[str, Any]], j: int) -> float:
    """The power of two at or below metric ``j``'s largest deviation from a configuration's
    minimum (1 when there is none): the values are divided by it before any sum of squares, so
    the variance of values up to 1e308 (or down to 1e-308) stays finite and exact."""
    spans = [
        float(r["metrics"][j]["high"]) - float(r["metrics"][j]["low"])
        for r in first
        if r["metrics"][j]["count"]
    ]
    big = max(spans, default=0.0)
    if not big > 0:
        return 1.0
    if not math.isfinite(big):
        return math.ldexp(1.0, 1023)
    return math.ldexp(1.0, math.frexp(big)[1] - 1)


def _summary_rows(
    first: Sequence[dict[str, Any]],
    moved: Sequence[Any],
    by: Sequence[str],
    metrics: Sequence[str],
    scales: dict[tuple[Any, ...], tuple[float, ...]],
    mads: dict[tuple[Any, ...], list[Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """Rows of the summary from :func:`_first_pass` and the moments (``moved``: one
    :class:`analysis.query.KeyMoments` per configuration with ok trials), and per metric the
    number of ok trials with a value in each row. ``mads``: per configuration, the MAD of
    each metric (of the shifted, scaled values) when the moments did not take it."""
    by_key = {tuple(km.key): km for km in moved}
    rows = []
    counts: dict[str, list[int]] = {m: [] for m in metrics}
    for rec in first:
        row: dict[str, Any] = dict(zip(by, rec["key"], strict=True))
        row["n"] = rec["n"]
        km = by_key.get(tuple(rec["key"]))
        for j, m in enumerate(metrics):
            got = rec["metrics"][j]
            count = int(got["count"])
            counts[m].append(count)
            k = scales[tuple(rec["key"])][j] if tuple(rec["key"]) in scales else 1.0
            if km is None or not count:
                mean, sd, mad, log_mean, log_var = math.nan, math.nan, math.nan, None, None
            else:
                stat = km.stats[j]
                mean = float(got["low"]) + stat.mean_dev * k
                sd = math.sqrt(stat.var) * k if not math.isnan(stat.var) else math.nan
                mad, log_mean, log_var = km.extra[3 * j : 3 * j + 3]
                if mads is not None:
                    mad = mads.get(tuple(rec["key"]), [None] * len(metrics))[j]
                mad = _nan(mad) * k
            if count > 1 and not math.isnan(sd):
                se = sd / math.sqrt(count)
                ci_low, ci_high = t_interval(mean, se, count - 1, CONFIDENCE)
            else:
                ci_low, ci_high = math.nan, math.nan
            q1, median, q3 = got["quartiles"] or (None, None, None)
            row[f"{m}_mean"] = mean
            row[f"{m}_sd"] = sd
            row[f"{m}_median"] = _nan(median)
            row[f"{m}_ci_low"] = ci_low
            row[f"{m}_ci_high"] = ci_high
            row[f"{m}_median_ci_low"] = row[f"{m}_median_ci_high"] = math.nan  # filled later
            row[f"{m}_mad"] = mad
            row[f"{m}_min"] = _nan(got["low"])
            row[f"{m}_max"] = _nan(got["high"])
            row[f"{m}_cv"] = sd / abs(mean) if mean and not math.isnan(sd) else math.nan
            row[f"{m}_q1"] = _nan(q1)
            row[f"{m}_q3"] = _nan(q3)
            row[f"{m}_outliers"] = 0  # counted by _tails
            row.update(_geometric(m, count, got["low"], got["nonpositive"], log_mean, log_var))
        row["accuracy_mean"] = _nan(rec["accuracy"])
        row["failed"] = int(rec["failed"])
        row["timeout"] = int(rec["timeout"])
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
    out[f"{m}_gmean"] = _times_exp(float(shift), float(log_mean))
    if count > 1 and log_var is not None:
        se = math.sqrt(max(float(log_var), 0.0) / count)
        low, high = t_interval(float(log_mean), se, count - 1, CONFIDENCE)
        out[f"{m}_gmean_ci_low"] = _times_exp(float(shift), low)
        out[f"{m}_gmean_ci_high"] = _times_exp(float(shift), high)
    return out


def _times_exp(shift: float, v: float) -> float:
    """``shift * exp(v)`` for ``shift > 0``; where ``exp(v)`` alone overflows (an interval of a
    range as wide as 1 to 1e-269), ``exp(ln shift + v)``, and inf when that overflows too."""
    try:
        return shift * math.exp(v)
    except OverflowError:
        try:
            return math.exp(math.log(shift) + v)
        except OverflowError:
            return math.inf
