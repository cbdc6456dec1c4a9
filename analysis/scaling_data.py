"""What :mod:`analysis.scaling` reads from DuckDB: per-level and per-cell sufficient statistics.

- per (group, x): count, median, mean and variance of the time: the per-level table;
- per (group, x, size): count, mean and variance: the fits' sufficient statistics; for the
  bootstrap, the values of the cells of at most :data:`BOOT_EXACT_MAX` trials (only those).

All through :func:`analysis.query.moments` (plain GROUP BY, no window function).

Precision: every cell's time is carried as its smallest trial (a data value) plus the mean
deviation from it. Times whose magnitude is beyond 2^400 or below 2^-400 (1e120, 1e-120 and
further out: their squares overflow or underflow) are first divided by a power of two near
their largest magnitude, which is exact; :class:`Loaded` says by what, and the analysis
multiplies every time-valued statistic back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis import query
from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    check_column,
    connect,
    execute,
    no_trials_error,
    nonfinite_message,
    quote,
    select,
)
from analysis.errors import AnalysisError
from analysis.query import Sql, key_batches, moments

if TYPE_CHECKING:
    import duckdb

#: Cells with more trials than this are bootstrapped from their normal approximation.
BOOT_EXACT_MAX = 5000
#: Times beyond this magnitude (or below its inverse) are scaled by a power of two first.
SCALE_LIMIT = 2.0**400


@dataclass
class Cell:
    """One (x, size) cell of a group, in scaled time units."""

    m: float
    size: float
    n: int
    shift: float  # the cell's smallest time (a data value)
    mean_dev: float  # mean of time - shift
    var: float  # sample variance, NaN when n == 1
    values: Any = None  # np.ndarray of time - shift per trial, fetched for the bootstrap

    @property
    def mean(self) -> float:
        return self.shift + self.mean_dev


@dataclass
class Group:
    """One ``by`` level: its (x, n, median, mean, variance) rows and its cells (scaled)."""

    level: tuple[Any, ...]
    levels: list[tuple[float, int, float, float, float]] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Loaded:
    sel: Selection
    groups: list[Group]
    size: str | None
    #: the power of two the times were divided by (1 unless they are huge or tiny)
    scale: float


def time_scale(big: float | None) -> float:
    """1, or for a largest magnitude beyond :data:`SCALE_LIMIT` (or below its inverse) the
    power of two at or below it: dividing by it is exact and leaves sums of squares finite."""
    if big is None or not math.isfinite(big) or big == 0:
        return 1.0
    if 1 / SCALE_LIMIT <= big <= SCALE_LIMIT:
        return 1.0
    return math.ldexp(1.0, math.frexp(big)[1] - 1)


def load(
    db: Database,
    *,
    metric: str,
    x: str,
    by: tuple[str, ...],
    size: str | None,
    where: Sequence[str | Filter],
    include_warmup: bool,
    fetch_values: bool,
) -> Loaded:
    with connect(db) as con:
        sel = select(con, metric=None, group=by, group_option="--by", where=where,
                     include_warmup=include_warmup)  # fmt: skip
        check_column(sel.columns, metric, "--metric", numeric=True)
        check_column(sel.columns, x, "--x", numeric=True)
        if size is None and "data_fraction" in sel.columns:
            size = "data_fraction"
        if size is not None:
            check_column(sel.columns, size, "--size", numeric=True)
        xm = f"CAST({quote(x)} AS DOUBLE)"
        sz = f"coalesce(CAST({quote(size)} AS DOUBLE), 1.0)" if size else "1.0"
        keys = [*by, Sql(xm)]
        cell_keys = [*keys, Sql(sz)]
        first = _first_scan(con, sel, metric=metric, x=x, keys=cell_keys)
        n = sum(r[0] for r in first.values())
        for name, k in ((metric, 0), (x, 1)):
            nan, pos, neg = (sum(r[1 + 3 * k + i] for r in first.values()) for i in range(3))
            if nan or pos or neg:
                raise AnalysisError(nonfinite_message(name, n, nan=nan, pos_inf=pos, neg_inf=neg))
        if n == 0:
            raise no_trials_error(sel, f"{metric} and {x}")
        big = max((r[8] for r in first.values() if r[8] is not None), default=None)
        scale = time_scale(big)
        _check_bad([sum(r[9 + i] for r in first.values()) for i in range(3)],
                   metric=metric, x=x, size=size)  # fmt: skip
        x_set = [f"{quote(x)} IS NOT NULL"]
        common = {"metrics": [metric], "scale": scale, "null_keys": True, "where": x_set}
        # every cell's and every level's minimum from the first scan (exact: / a power of two)
        cell_min = {k: (float(r[7]) / scale,) for k, r in first.items() if r[0]}
        level_min: dict[tuple[Any, ...], tuple[float]] = {}
        for k, (lo,) in cell_min.items():
            level_min[k[:-1]] = (min(lo, level_min.get(k[:-1], (lo,))[0]),)
        # the median holds a level's values: beyond query.HELD_MAX selected trials, the levels go in
        # batches of at most that many (one scan each; the same aggregates, the same results)
        level_n: dict[tuple[Any, ...], int] = {}
        for k, r in first.items():
            level_n[k[:-1]] = level_n.get(k[:-1], 0) + int(r[0])
        level_rows = []
        for batch in key_batches(level_min, level_n, query.HELD_MAX) if level_min else []:
            level_rows += moments(con, sel, keys=keys, aggregates=["median(x0)"], shifts=batch,
                                  **common)  # fmt: skip
        level_rows.sort(key=lambda km: [(v is None, v) for v in km.key])
        # the order of a cell's values for the bootstrap (resampled by index, so it must not
        # depend on DuckDB's threads): by trial id, else by value
        cells = moments(con, sel, keys=cell_keys, shifts=cell_min, **common)
        values: dict[tuple[Any, ...], Any] = {}
        small = {c.key: (c.stat.shift,) for c in cells if c.n <= BOOT_EXACT_MAX}
        if fetch_values and small:
            tid = "trial_id" if "trial_id" in sel.columns else None
            order = "x1" if tid else "x0"
            listed = moments(
                con,
                sel,
                keys=[*keys, Sql(sz)],
                metrics=[metric, Sql(f"CAST({tid} AS DOUBLE)") if tid else metric],
                scale=[scale, 1.0],
                shifts={k: (v[0], 0.0) for k, v in small.items()},
                aggregates=[f"list(d0 ORDER BY {order})"],
                null_keys=True,
                where=x_set,
            )
            values = {c.key: c.extra[0] for c in listed}
    import numpy as np

    groups: dict[tuple[Any, ...], Group] = {}
    for km in level_rows:
        key, m = tuple(km.key[:-1]), km.key[-1]
        st = km.stat
        grp = groups.setdefault(key, Group(level=key))
        grp.levels.append((float(m), km.n, float(km.extra[0]), st.mean, st.var))
    for km in cells:
        key, (m, sz_value) = tuple(km.key[:-2]), km.key[-2:]
        st = km.stat
        listed_values = values.get(km.key)
        groups[key].cells.append(
            Cell(
                m=float(m),
                size=float(sz_value),
                n=km.n,
                shift=st.shift,
                mean_dev=st.mean_dev,
                var=st.var,
                values=None if listed_values is None else np.asarray(listed_values, dtype=float),
            )
        )
    return Loaded(sel, list(groups.values()), size, scale)


def _first_scan(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    x: str,
    keys: Sequence[str | Sql],
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """One GROUP BY of the selected trials with a time and an x, per cell (``keys``, NULLs
    kept): the count; NaN, +inf, -inf counts of the time, then of x
    (:func:`analysis.data.finite_check`'s rule); the smallest time, the largest magnitude;
    the counts of x <= 0, of negative times and of sizes not a positive number (the last key)."""
    raw = f"CAST({quote(metric)} AS DOUBLE)"
    xm = f"CAST({quote(x)} AS DOUBLE)"
    cols = [f"{k.text if isinstance(k, Sql) else quote(k)} AS k{i}" for i, k in enumerate(keys)]
    ks = [f"k{i}" for i in range(len(keys))]
    size = ks[-1]
    aggs = ["count(*)"]
    for v in ("t", "xv"):
        aggs += [
            f"count(*) FILTER (WHERE isnan({v}))",
            f"count(*) FILTER (WHERE {v} = 'inf'::DOUBLE)",
            f"count(*) FILTER (WHERE {v} = '-inf'::DOUBLE)",
        ]
    aggs += ["min(t)", "max(abs(t))", "count(*) FILTER (WHERE xv <= 0)"]
    aggs += ["count(*) FILTER (WHERE t < 0)"]
    aggs += [f"count(*) FILTER (WHERE NOT isfinite({size}) OR {size} <= 0)"]
    where = sel.where_and(f"{quote(metric)} IS NOT NULL", f"{quote(x)} IS NOT NULL")
    sql = (
        f"SELECT {', '.join(ks)}, {', '.join(aggs)} FROM (SELECT {', '.join(cols)}, "
        f"{raw} AS t, {xm} AS xv FROM {VIEW}{where}) GROUP BY {', '.join(ks)}"
    )
    nk = len(keys)
    return {tuple(r[:nk]): tuple(r[nk:]) for r in execute(con, sql, sel.params)}


def _check_bad(bad: Sequence[int], *, metric: str, x: str, size: str | None) -> None:
    """Refuse x <= 0, a negative time or a size that is not a positive number."""
    if bad[0]:
        raise AnalysisError(
            f"--x {x} is zero or negative in {bad[0]} selected trials; scaling needs a "
            f"positive count: exclude them with --where '{x}>0'"
        )
    if bad[1]:
        raise AnalysisError(
            f"--metric {metric} is negative in {bad[1]} selected trials; a time cannot be "
            f"negative: check the data or exclude them with --where '{metric}>=0'"
        )
    if bad[2]:
        raise AnalysisError(
            f"--size {size} is zero, negative or not finite in {bad[2]} selected trials; "
            f"exclude them with --where, or name another --size column"
        )
