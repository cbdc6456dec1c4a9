"""The tails of :func:`analysis.summary.summarize`: Tukey outliers and the exact bootstrap
interval of each median from only the values near it (aggregates over the ok trials joined to a
small per-configuration table, riding the summary's moments scan or in a scan of their own; no
list of every value)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from analysis.bootstrap import (
    group_rng,
    median_ranks,
    median_window,
    medians_from_ranks,
    percentile_interval,
)
from analysis.boxstats import TUKEY_K
from analysis.data import VIEW, Selection, execute, format_level, quote
from analysis.options import CONFIDENCE

if TYPE_CHECKING:
    import duckdb
    import numpy as np

__all__ = [
    "WINDOW_MARGIN",
    "held_stats",
    "median_draws",
    "tail_aggregates",
    "tail_ranges",
    "tail_values",
    "tails",
]


#: A configuration's values near its median are fetched between its median minus this many
#: times the spread its drawn bootstrap ranks would have if the values were spread evenly
#: between the quartiles, and as much above (a guess; the counts then prove the draws were
#: covered, else the configuration is fetched whole).
WINDOW_MARGIN = 6.0


def tails(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    by: Sequence[str],
    metrics: Sequence[str],
    rows: list[dict[str, Any]],
    counts: dict[str, list[int]],
    *,
    n_boot: int,
    seed: int,
    whiskers: dict[tuple[int, int], tuple[Any, Any, Any]] | None = None,
    scanned: dict[int, Sequence[Any]] | None = None,
    draws: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """Fill ``<metric>_outliers`` (beyond Tukey's fences) and, with ``n_boot``, the bootstrap
    interval of the median ``<metric>_median_ci_low/high`` (rows with at least 2 values).
    ``whiskers``: filled from the same scan, per ``(row, metric)`` index with values, with the
    lowest value at or above the lower fence, the highest at or below the upper one and the
    values beyond the fences sorted (a Tukey box's whiskers and fliers, as
    :func:`analysis.box_stats` finds them).

    The bootstrap medians' ranks depend only on a row's count and its own stream, so they are
    drawn first (:func:`median_draws`, one row at a time). One scan counts the outliers and
    fetches, per (metric, row), the values in a range guessed to hold the drawn ranks (from the
    quartiles, :func:`tail_ranges`) and the count below it; the draws are covered when the
    count below is under their lowest rank and the count up to the range's top reaches their
    highest. A row not covered is fetched again whole, so the result is exact.

    ``scanned``: that first scan's aggregates (:func:`tail_aggregates` with ``outliers`` and
    ``whiskers`` as here, over :func:`tail_values` of :func:`tail_ranges`), per row index with
    ok trials, when another scan (the moments') already took them; the scan is then skipped.
    ``draws``: :func:`median_draws` when the caller drew them for those ranges.
    """
    if draws is None:
        draws = median_draws(rows, by, metrics, counts, n_boot, seed)
    ranges = tail_ranges(rows, metrics, counts, draws)
    outliers = True
    while True:
        if scanned is not None:
            fetched = _read_tails(scanned, metrics, rows, ranges, outliers=True, whiskers=whiskers)
            scanned = None
        else:
            fetched = _tail_scan(
                con, sel, by, metrics, rows, ranges, outliers=outliers, whiskers=whiskers
            )
        outliers, whiskers = False, None
        missed: dict[tuple[int, int], tuple[float, float]] = {}
        for (i, j), (below, values) in fetched.items():
            m, row = metrics[j], rows[i]
            lo_rank, hi_rank = below + 1, below + len(values)
            lo, hi = draws[i, j]
            if lo.min() < lo_rank or hi.max() > hi_rank:
                missed[i, j] = (-math.inf, math.inf)
                continue
            medians = medians_from_ranks(values, lo_rank, lo, hi)
            low, high = percentile_interval(medians, CONFIDENCE)
            row[f"{m}_median_ci_low"], row[f"{m}_median_ci_high"] = low, high
        if not missed or all(ranges.get(k) == r for k, r in missed.items()):
            if missed:  # pragma: no cover - a whole group always covers every rank
                raise RuntimeError("the values of a group do not cover its own ranks")
            return
        ranges = missed


def median_draws(
    rows: Sequence[dict[str, Any]],
    by: Sequence[str],
    metrics: Sequence[str],
    counts: dict[str, list[int]],
    n_boot: int,
    seed: int,
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Per ``(row, metric)`` index with 2 or more values (none without ``n_boot``), the ranks
    of its ``n_boot`` bootstrap medians (:func:`median_ranks`) from its own stream, keyed by
    the metric and the row's ``by`` values: they need only the count."""
    draws = {}
    if n_boot > 0:
        for j, m in enumerate(metrics):
            for i, row in enumerate(rows):
                if counts[m][i] >= 2:
                    key = [m, [[b, format_level(row[b])] for b in by]]
                    draws[i, j] = median_ranks(counts[m][i], n_boot, group_rng(seed, key))
    return draws


def tail_ranges(
    rows: Sequence[dict[str, Any]],
    metrics: Sequence[str],
    counts: dict[str, list[int]],
    draws: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
) -> dict[tuple[int, int], tuple[float, float]]:
    """Per ``(row, metric)`` index of ``draws``, the value range guessed to hold its drawn
    ranks (from the row's quartiles)."""
    ranges: dict[tuple[int, int], tuple[float, float]] = {}
    for (i, j), (lo, hi) in draws.items():
        m = metrics[j]
        ranges[i, j] = _guess_range(rows[i], m, counts[m][i], int(lo.min()), int(hi.max()))
    return ranges


def tail_values(
    row: dict[str, Any],
    i: int,
    metrics: Sequence[str],
    ranges: dict[tuple[int, int], tuple[float, float]],
) -> list[float]:
    """Row ``i``'s numbers the tail aggregates compare with, per metric: q1, q3 and the
    range's ends (NaN when it has none)."""
    out: list[float] = []
    for j, m in enumerate(metrics):
        lo, hi = ranges.get((i, j), (math.nan, math.nan))
        out += [float(row[f"{m}_q1"]), float(row[f"{m}_q3"]), float(lo), float(hi)]
    return out


def tail_aggregates(
    nm: int,
    x: Callable[[int], str],
    value: Callable[[int], str],
    *,
    outliers: bool,
    whiskers: bool,
) -> list[str]:
    """The tail scan's aggregates per metric ``j`` over its values ``x(j)`` (as stored) and
    the row's numbers of :func:`tail_values` (``value(4 * j + k)``, k = 0..3: q1, q3, the
    range's ends): the Tukey outliers (or 0), the count below the range, the values in it and
    with ``whiskers`` the lowest value at or above the lower fence, the highest at or below the
    upper one and the values beyond them sorted."""
    aggs = []
    for j in range(nm):
        v, q1, q3, lo, hi = x(j), value(4 * j), value(4 * j + 1), value(4 * j + 2), value(4 * j + 3)
        fence = f"{TUKEY_K!r} * ({q3} - {q1})"
        aggs.append(f"count_if({v} < {q1} - {fence} OR {v} > {q3} + {fence})" if outliers else "0")
        aggs += [
            f"count_if({v} < {lo})",
            f"list({v}) FILTER (WHERE {v} BETWEEN {lo} AND {hi})",
        ]
        if whiskers:
            low, high = f"{q1} - {fence}", f"{q3} + {fence}"
            aggs += [
                f"min({v}) FILTER (WHERE {v} >= {low})",
                f"max({v}) FILTER (WHERE {v} <= {high})",
                f"list({v} ORDER BY {v}) FILTER (WHERE {v} < {low} OR {v} > {high})",
            ]
    return aggs


def _guess_range(row: dict[str, Any], m: str, n: int, first: int, last: int) -> tuple[float, float]:
    """A value range that likely holds ranks ``first`` to ``last`` of the ``n`` values of
    metric ``m`` in ``row`` (from its quartiles and median); everything for a small ``n`` (where
    :func:`median_window` spans every rank)."""
    if median_window(n) == (1, n):
        return -math.inf, math.inf
    q1, median, q3 = row[f"{m}_q1"], row[f"{m}_median"], row[f"{m}_q3"]
    mid = (n + 1) / 2
    low = median - WINDOW_MARGIN * (median - q1) * (mid - first + 1) / (0.25 * n)
    high = median + WINDOW_MARGIN * (q3 - median) * (last - mid + 1) / (0.25 * n)
    return low, high


def _tail_scan(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    by: Sequence[str],
    metrics: Sequence[str],
    rows: list[dict[str, Any]],
    ranges: dict[tuple[int, int], tuple[float, float]],
    *,
    outliers: bool,
    whiskers: dict[tuple[int, int], tuple[Any, Any, Any]] | None = None,
) -> dict[tuple[int, int], tuple[int, np.ndarray]]:
    """One scan of the ok trials joined to a small table of the rows' levels, quartiles and
    ``ranges``: with ``outliers`` sets ``<metric>_outliers`` of ``rows`` (and fills
    ``whiskers``, see :func:`tails`); returns per ``(i, j)`` of ``ranges`` the count of values
    of metric ``j`` in row ``i`` below the range and the sorted values in it."""
    if not outliers:
        whiskers = None
    if not ranges and not outliers:
        return {}
    ok_rows = [i for i, row in enumerate(rows) if row["n"]]
    if not ok_rows:
        return {}
    nb, nm = len(by), len(metrics)
    names = [f"__g{k}" for k in range(nb)] + ["__gid"]
    cells, args = [], []
    for i in ok_rows:
        row = rows[i]
        cast = [f"CAST(? AS {sel.columns[b]})" for b in by]
        args += [row[b] for b in by]
        values = [str(i), *(_literal(v) for v in tail_values(row, i, metrics, ranges))]
        cells.append("(" + ", ".join(cast + values) + ")")
    names += [f"__v{k}" for k in range(4 * nm)]
    aggs = tail_aggregates(
        nm,
        lambda j: f"__x{j}",
        lambda k: f"__v{k}",
        outliers=outliers,
        whiskers=whiskers is not None,
    )
    inner = [quote(b) for b in by] + [
        f"CAST({quote(m)} AS DOUBLE) AS __x{j}" for j, m in enumerate(metrics)
    ]
    on = " AND ".join(f"b.{quote(b)} IS NOT DISTINCT FROM p.__g{k}" for k, b in enumerate(by))
    where_ok = sel.where_and("status = 'ok'")
    sql = (
        f"SELECT p.__gid, {', '.join(aggs)} "
        f"FROM (SELECT {', '.join(inner)} FROM {VIEW}{where_ok}) AS b "
        f"{'JOIN' if by else 'CROSS JOIN'} (VALUES {', '.join(cells)}) AS p({', '.join(names)})"
        f"{' ON ' + on if by else ''} GROUP BY p.__gid"
    )
    scanned = {int(rec[0]): rec[1:] for rec in execute(con, sql, [*sel.params, *args])}
    return _read_tails(scanned, metrics, rows, ranges, outliers=outliers, whiskers=whiskers)


def _read_tails(
    scanned: dict[int, Sequence[Any]],
    metrics: Sequence[str],
    rows: list[dict[str, Any]],
    ranges: dict[tuple[int, int], tuple[float, float]],
    *,
    outliers: bool,
    whiskers: dict[tuple[int, int], tuple[Any, Any, Any]] | None,
) -> dict[tuple[int, int], tuple[int, np.ndarray]]:
    """:func:`tail_aggregates`' values per row index into ``rows`` (outliers), ``whiskers`` and
    per ``(i, j)`` of ``ranges`` the count below the range and the sorted values in it."""
    import numpy as np

    out = {}
    width = 3 if whiskers is None else 6
    for i, rec in scanned.items():
        for j, m in enumerate(metrics):
            n_out, below, values, *ends = rec[width * j : width * (j + 1)]
            if whiskers is not None:
                whiskers[i, j] = (ends[0], ends[1], ends[2])
            if outliers:  # a metric with no value in the configuration has none (NULL count)
                rows[i][f"{m}_outliers"] = int(n_out or 0)
            if (i, j) in ranges:
                out[i, j] = (int(below or 0), np.sort(np.asarray(values or [], dtype=float)))
    return out


def _literal(value: float) -> str:
    """An exact SQL DOUBLE literal (NaN and infinities included)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def held_stats(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    by: Sequence[str],
    metrics: Sequence[str],
    first: list[dict[str, Any]],
    scales: Sequence[float],
    shifts: dict[tuple[Any, ...], tuple[float, ...]],
    held_max: int,
) -> dict[tuple[Any, ...], list[Any]]:
    """The quartiles (set into ``first``'s records, as the first pass would) and the MADs
    (returned per configuration key, one per metric) of configurations in batches of at most
    ``held_max`` values (a batch may be one larger configuration): one scan per batch, joined
    to the batch's keys and shifts. The same aggregates over the same values as the one-scan
    path (``quantile_cont`` of the values, ``mad`` of ``x / scale - shift``), so the same
    results."""
    from analysis.query import scale_literal

    nb, nm = len(by), len(metrics)
    todo = [i for i, rec in enumerate(first) if rec["n"]]
    batches: list[list[int]] = []
    size = 0
    for i in todo:
        held = sum(int(first[i]["metrics"][j]["count"]) for j in range(nm))
        if not batches or size + held > held_max:
            batches.append([])
            size = 0
        batches[-1].append(i)
        size += held
    inner = [quote(b) for b in by]
    inner += [f"CAST({quote(m)} AS DOUBLE) AS __x{j}" for j, m in enumerate(metrics)]
    aggs = []
    for j, k in enumerate(scales):
        x = f"__x{j}" if k == 1 else f"__x{j} / {scale_literal(float(k))}"
        aggs += [
            f"quantile_cont(__x{j}, [0.25, 0.5, 0.75]) FILTER (WHERE __x{j} IS NOT NULL)",
            f"mad({x} - __s{j})",
        ]
    names = [f"__g{k}" for k in range(nb)] + ["__gid"] + [f"__s{j}" for j in range(nm)]
    on = " AND ".join(f"b.{quote(b)} IS NOT DISTINCT FROM p.__g{k}" for k, b in enumerate(by))
    where_ok = sel.where_and("status = 'ok'")
    mads: dict[tuple[Any, ...], list[Any]] = {}
    for batch in batches:
        cells, args = [], []
        for i in batch:
            key = tuple(first[i]["key"])
            args += list(key)
            cast = [f"CAST(? AS {sel.columns[b]})" for b in by]
            values = [str(i), *(_literal(v) for v in shifts[key])]
            cells.append("(" + ", ".join(cast + values) + ")")
        sql = (
            f"SELECT p.__gid, {', '.join(aggs)} "
            f"FROM (SELECT {', '.join(inner)} FROM {VIEW}{where_ok}) AS b "
            f"{'JOIN' if by else 'CROSS JOIN'} (VALUES {', '.join(cells)}) AS "
            f"p({', '.join(names)}){' ON ' + on if by else ''} GROUP BY p.__gid"
        )
        for rec in execute(con, sql, [*sel.params, *args]):
            i = int(rec[0])
            got = first[i]
            for j in range(nm):
                got["metrics"][j]["quartiles"] = rec[1 + 2 * j]
            mads[tuple(got["key"])] = [rec[2 + 2 * j] for j in range(nm)]
    return mads
