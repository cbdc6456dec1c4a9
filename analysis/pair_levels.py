"""The two levels a two-sample comparison reads: their moments, stored keys, medians and values,
all from DuckDB (values leave it only when a statistic needs the rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    GroupMoments,
    Selection,
    execute,
    format_level,
    group_moments,
    load_groups,
    moment_scale,
    quote,
)
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import duckdb
    import numpy as np


def level_keys(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    levels: Sequence[str],
    *,
    metric: str,
    group: str,
) -> tuple[Any, ...]:
    """The stored values of ``group`` behind the formatted ``levels`` (to bind as parameters)."""
    m, g = quote(metric), quote(group)
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{g} IS NOT NULL")
    raw = execute(con, f"SELECT DISTINCT {g} FROM {VIEW}{where_sql}", sel.params)
    stored = {format_level(r[0]): r[0] for r in raw}
    return tuple(stored[level] for level in levels)


def level_where(sel: Selection, key: Any, *, metric: str, group: str) -> tuple[str, list[Any]]:
    where_sql = sel.where_and(f"{quote(metric)} IS NOT NULL", f"{quote(group)} = ?")
    return where_sql, [*sel.params, key]


def level_median(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    g: GroupMoments,
    key: Any,
    *,
    metric: str,
    group: str,
) -> float:
    """The level's median from DuckDB (of ``metric - shift``, shift added back); NaN and
    infinite values are refused."""
    where_sql, params = level_where(sel, key, metric=metric, group=group)
    x = f"CAST({quote(metric)} AS DOUBLE)"
    sql = (
        f"SELECT count(*) FILTER (WHERE NOT isfinite({x})), median({x} - ?) FROM {VIEW}{where_sql}"
    )
    bad, median_dev = execute(con, sql, [g.shift, *params])[0]
    if bad:
        raise AssertionError("finite_check let a non-finite value through")
    return g.shift + float(median_dev)


def level_values(
    con: duckdb.DuckDBPyConnection, sel: Selection, key: Any, *, metric: str, group: str
) -> np.ndarray:
    """The level's values of ``metric`` (float64), fetched from DuckDB in trial order (a
    bootstrap resamples them by position: the order is part of its result)."""
    import numpy as np

    where_sql, params = level_where(sel, key, metric=metric, group=group)
    order = " ORDER BY trial_id" if "trial_id" in sel.columns else ""
    sql = f"SELECT CAST({quote(metric)} AS DOUBLE) AS x FROM {VIEW}{where_sql}{order}"
    return np.asarray(con.execute(sql, params).fetchnumpy()["x"], dtype=np.float64)


def find_level(
    by_level: dict[str, GroupMoments], level: str, *, option: str, group: str
) -> GroupMoments:
    """Match a level as typed; numbers also match in another spelling (``2.0`` for ``2``)."""
    if level in by_level:
        return by_level[level]
    try:
        number = float(level)
    except ValueError:
        number = None
    if number is not None and format_level(number) in by_level:
        return by_level[format_level(number)]
    raise AnalysisError(
        f"{option} {level!r} is not a level of {group} in the selected trials; "
        f"levels present: {', '.join(by_level)}"
    )


def scaled_pair(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    ga: GroupMoments,
    gb: GroupMoments,
    *,
    metric: str,
    group: str,
) -> tuple[GroupMoments, GroupMoments, float]:
    """``(ga, gb, 1.0)``, or for huge values (:func:`moment_scale`) their moments of
    ``metric / scale`` and the scale: statistics of scale (sd, differences, intervals) are then
    multiplied back by it, so values up to 1e308 give finite t, p and d."""
    scale = moment_scale(con, sel, metric=metric)
    if scale == 1.0:
        return ga, gb, scale
    by_level = {g.level: g for g in group_moments(con, sel, metric=metric, group=group,
                                                   scale=scale)}  # fmt: skip
    return by_level[ga.level], by_level[gb.level], scale


def two_levels(
    db: Database,
    *,
    group: str,
    a: str,
    b: str,
    metric: str,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> tuple[Selection, GroupMoments, GroupMoments]:
    """The selection and the moments of ``metric`` at ``group=a`` and ``group=b`` (two
    different levels, each present in the selected trials)."""
    a, b = str(a), str(b)
    if a == b:
        raise AnalysisError(f"--a and --b are both {a!r}; give two different levels of {group}")
    sel, groups = load_groups(
        db, metric=metric, group=group, where=where, include_warmup=include_warmup
    )
    by_level = {g.level: g for g in groups}
    ga = find_level(by_level, a, option="--a", group=group)
    gb = find_level(by_level, b, option="--b", group=group)
    if ga is gb:
        raise AnalysisError(f"--a {a!r} and --b {b!r} are the same level of {group}")
    return sel, ga, gb
