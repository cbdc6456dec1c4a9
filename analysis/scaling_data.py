"""What :mod:`analysis.scaling` reads from DuckDB: per-level and per-cell sufficient statistics.

- GROUP BY (group, x): count, median, mean and variance of the time: the per-level table.
- GROUP BY (group, x, size): count, mean and variance (and, for the bootstrap, the values of a
  cell of at most :data:`BOOT_EXACT_MAX` trials): the fits' sufficient statistics.

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
from typing import Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    check_column,
    connect,
    execute,
    finite_check,
    no_trials_error,
    quote,
    select,
)
from analysis.errors import AnalysisError

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
        n = finite_check(con, sel, [(metric, "--metric"), (x, "--x")])
        if n == 0:
            raise no_trials_error(sel, f"{metric} and {x}")
        raw = f"CAST({quote(metric)} AS DOUBLE)"
        not_null = sel.where_and(f"{quote(metric)} IS NOT NULL", f"{quote(x)} IS NOT NULL")
        (big,) = execute(con, f"SELECT max(abs({raw})) FROM {VIEW}{not_null}", sel.params)[0]
        scale = time_scale(big)
        t = raw if scale == 1 else f"({raw} / {scale!r})"
        xm = f"CAST({quote(x)} AS DOUBLE)"
        sz = f"coalesce(CAST({quote(size)} AS DOUBLE), 1.0)" if size else "1.0"
        gs = [f"g{i}" for i in range(len(by))]
        cols = [f"{quote(b)} AS {g}" for b, g in zip(by, gs, strict=True)]
        # the order of a cell's values for the bootstrap (resampled by index, so it must not
        # depend on DuckDB's threads): by trial id, else by value
        tid = ""
        if fetch_values:
            tid = f", {'trial_id' if 'trial_id' in sel.columns else t} AS tid"
        base = (
            f"SELECT {''.join(c + ', ' for c in cols)}{xm} AS m, {sz} AS sz, {t} AS t{tid} "
            f"FROM {VIEW}{not_null}"
        )
        bad = execute(
            con,
            f"SELECT count(*) FILTER (WHERE m <= 0), count(*) FILTER (WHERE t < 0), "
            f"count(*) FILTER (WHERE NOT isfinite(sz) OR sz <= 0) FROM ({base})",
            sel.params,
        )[0]
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
        keys = ", ".join([*gs, "m"])
        order = ", ".join(f"{k} NULLS LAST" for k in [*gs, "m"])
        shifted = (
            f"SELECT *, t - min(t) OVER (PARTITION BY {{p}}) AS d, "
            f"min(t) OVER (PARTITION BY {{p}}) AS s FROM ({base})"
        )
        level_rows = execute(
            con,
            f"SELECT {keys}, count(*), median(t), any_value(s) + avg(d), var_samp(d) "
            f"FROM ({shifted.format(p=keys)}) GROUP BY {keys} ORDER BY {order}",
            sel.params,
        )
        cell_keys = f"{keys}, sz"
        vals = (
            f", CASE WHEN count(*) <= {BOOT_EXACT_MAX} THEN list(d ORDER BY tid) END"
            if fetch_values
            else ""
        )
        cell_rows = execute(
            con,
            f"SELECT {cell_keys}, count(*), any_value(s), avg(d), var_samp(d){vals} "
            f"FROM ({shifted.format(p=cell_keys)}) GROUP BY {cell_keys} "
            f"ORDER BY {order}, sz",
            sel.params,
        )
    import numpy as np

    g = len(by)
    groups: dict[tuple[Any, ...], Group] = {}
    for row in level_rows:
        key = tuple(row[:g])
        m, count, median, mean, var = row[g:]
        grp = groups.setdefault(key, Group(level=key))
        grp.levels.append(
            (float(m), int(count), float(median), float(mean), math.nan if var is None else var)
        )
    for row in cell_rows:
        key = tuple(row[:g])
        m, sz, count, shift, mean_dev, var = row[g : g + 6]
        values = row[g + 6] if fetch_values else None
        groups[key].cells.append(
            Cell(
                m=float(m),
                size=float(sz),
                n=int(count),
                shift=float(shift),
                mean_dev=float(mean_dev),
                var=math.nan if var is None else float(var),
                values=None if values is None else np.asarray(values, dtype=float),
            )
        )
    return Loaded(sel, list(groups.values()), size, scale)
