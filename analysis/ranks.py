"""Mid-rank sums for the rank tests (Mann–Whitney U, Kruskal–Wallis).

Tied values share the average of the ranks they span, as ``scipy.stats.rankdata``. DuckDB
counts the levels and hands over each level's values as one array (:func:`fetch_with_values`:
one ``list()`` per level, not a Python float per value); numpy sorts them and counts, for each
value, the pooled values below it and up to it (``searchsorted``), so a level's rank sum is
exact integer arithmetic. Above the values a caller lets numpy hold (``held``), the pooled sample
is ranked in DuckDB instead (a window function, which spills to disk), so memory stays bounded.
Python receives one row per level: its count and rank sum, plus the tie term ``sum(t^3 - t)``
over groups of tied values.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from analysis.data import VIEW, Selection, execute, format_level, quote
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import numpy as np

#: ``searchsorted`` runs over at most this many values at a time (its int64 positions are the
#: largest temporary of :func:`sorted_rank_sums`).
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RankSums:
    """Per level (sorted by value): trial count and sum of mid-ranks in the pooled sample."""

    levels: tuple[str, ...]
    n: tuple[int, ...]
    rank_sum: tuple[float, ...]
    tie_term: float  # sum over groups of tied values of t^3 - t

    @property
    def n_total(self) -> int:
        return sum(self.n)

    def of(self, level: str) -> tuple[int, float]:
        """``(n, rank_sum)`` of one level."""
        i = self.levels.index(level)
        return self.n[i], self.rank_sum[i]


def fetch_with_values(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any], *, order: str
) -> tuple[list[tuple], list[np.ndarray]]:
    """Run an aggregate ``sql`` whose last column is ``list(...) AS __x``: its other columns as
    ``fetchall`` rows (DuckDB's Python types, as :func:`analysis.data.execute`) and the lists
    as float64 arrays, both in the ``order`` of ``sql``'s output columns (``ORDER BY`` text).

    The result (one row per group) goes to a temporary table, read twice: ``fetchnumpy`` hands
    a list over as one array, where ``fetchall`` makes a Python float of every value."""
    import numpy as np

    name = f"__trialkit_values_{uuid.uuid4().hex}"
    execute(con, f"CREATE TEMP TABLE {name} AS "
            f"SELECT row_number() OVER (ORDER BY {order}) AS __i, * FROM ({sql})",
            params)  # fmt: skip
    try:
        rows = [r[1:] for r in con.execute(f"SELECT * EXCLUDE (__x) FROM {name} ORDER BY __i")
                .fetchall()]  # fmt: skip
        lists = con.execute(f"SELECT __x FROM {name} ORDER BY __i").fetchnumpy()["__x"]
    finally:
        with contextlib.suppress(duckdb.Error):  # never mask the error that got us here
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return rows, [np.asarray(v, dtype=np.float64) for v in lists]


def tie_term(pooled: np.ndarray) -> int:
    """``sum(t^3 - t)`` over the groups of ``t`` equal values of the sorted ``pooled`` (exact)."""
    import numpy as np

    if pooled.size < 2:
        return 0
    edges = np.flatnonzero(pooled[1:] != pooled[:-1])
    runs = np.diff(edges, prepend=-1, append=pooled.size - 1)
    runs = runs[runs > 1]
    if not runs.size:
        return 0
    big = int(runs.max())
    if big**3 * runs.size < 2**62:  # no int64 overflow
        return int((runs * runs * runs - runs).sum())
    return sum(t**3 - t for t in map(int, runs))


def sorted_rank_sums(groups: Sequence[np.ndarray]) -> tuple[list[float], int]:
    """Mid-rank sums of each of ``groups`` (float64 arrays, each sorted ascending) in their
    pooled sample, and the tie term ``sum(t^3 - t)``: a value with ``lo`` pooled values below
    it and ``hi`` up to and with it spans ranks ``lo + 1 .. hi``, mid-rank ``(lo + 1 + hi) / 2``.
    The largest group's sum is the rest of ``N (N + 1) / 2``. Integer sums, so exact."""
    import numpy as np

    pooled = np.concatenate(groups) if len(groups) != 1 else groups[0].copy()
    pooled.sort()
    total = pooled.size
    largest = max(range(len(groups)), key=lambda i: groups[i].size) if groups else -1
    twice: list[int] = [0] * len(groups)
    for i, v in enumerate(groups):
        if i == largest:
            continue
        s = v.size
        for start in range(0, v.size, _CHUNK):
            part = v[start : start + _CHUNK]
            s += int(np.searchsorted(pooled, part, "left").sum(dtype=np.int64))
            s += int(np.searchsorted(pooled, part, "right").sum(dtype=np.int64))
        twice[i] = s
    if largest >= 0:
        twice[largest] = total * (total + 1) - sum(twice)
    return [t / 2 for t in twice], tie_term(pooled)


def rank_sums(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    group: str,
    levels: Sequence[str] | None = None,
    held: int = 0,
    keys: Sequence[Any] | None = None,
    expected: int | None = None,
) -> RankSums:
    """Rank ``metric`` over the selected trials of ``levels`` of ``group`` (all levels when
    None; levels as :func:`analysis.data.format_level` writes them) and sum the ranks per level.

    ``held``: the most values numpy may hold to rank them (:func:`sorted_rank_sums`, e.g.
    :data:`analysis.query.HELD_VALUES`); beyond it, and by default (0: Python never holds the
    values), DuckDB ranks them with a window. The results are the same. ``keys`` (the raw
    values of ``levels``) and ``expected`` (how many values the caller's moments counted): when
    ``expected <= held``, one scan fetches the values with their NaN count, instead of a scan
    that counts first. Rows with a NULL metric or group value are left out. NaN values are
    refused (their rank is undefined).
    """
    m, g = quote(metric), quote(group)
    x = f"CAST({m} AS DOUBLE)"
    conds = [f"{m} IS NOT NULL", f"{g} IS NOT NULL"]
    params = list(sel.params)
    if levels is not None and keys is not None and expected is not None and expected <= held:
        inside = f"{g} IN ({', '.join('?' for _ in keys)})"
        rows, values = fetch_with_values(
            con,
            f"SELECT {g} AS __g, count_if(isnan({x})), list({x}) AS __x "
            f"FROM {VIEW}{sel.where_and(*conds, inside)} GROUP BY {g}",
            [*params, *keys],
            order="__g",
        )
        if {format_level(r[0]) for r in rows} == set(levels):  # else: the counts say what is amiss
            _refuse_nan(sum(int(r[1]) for r in rows), metric)
            return _numpy_rank_sums([r[0] for r in rows], values)
    # one scan: the levels present, their counts and NaNs
    counted = execute(
        con,
        f"SELECT {g}, count(*), count_if(isnan({x})) FROM {VIEW}{sel.where_and(*conds)} "
        f"GROUP BY {g} ORDER BY {g}",
        sel.params,
    )
    if levels is not None:
        wanted = {format_level(r[0]): r[0] for r in counted}
        missing = [lv for lv in levels if lv not in wanted]
        if missing:
            raise AnalysisError(
                f"--group {group}: level {missing[0]} has no trial with {metric}; levels "
                f"present: {', '.join(sorted(wanted))}"
            )
        conds.append(f"{g} IN ({', '.join('?' for _ in levels)})")
        params += [wanted[lv] for lv in levels]
        chosen = {wanted[lv] for lv in levels}
        counted = [r for r in counted if r[0] in chosen]
    _refuse_nan(sum(int(r[2]) for r in counted), metric)
    if not counted:
        return RankSums((), (), (), 0.0)
    where_sql = sel.where_and(*conds)
    if sum(int(r[1]) for r in counted) > held:
        return _window_rank_sums(con, where_sql, params, g=g, x=x)
    rows, values = fetch_with_values(
        con, f"SELECT {g} AS __g, list({x}) AS __x FROM {VIEW}{where_sql} GROUP BY {g}", params,
        order="__g",
    )  # fmt: skip
    return _numpy_rank_sums([r[0] for r in rows], values)


def _refuse_nan(nan: int, metric: str) -> None:
    if nan:
        raise AnalysisError(
            f"{metric} is NaN in {nan} selected trials, so they cannot be ranked; exclude them, "
            f"e.g. --where '{metric}<1e308'"
        )


def _numpy_rank_sums(levels: Sequence[Any], values: list[np.ndarray]) -> RankSums:
    """:class:`RankSums` of the (raw) ``levels`` from their values (sorted here, in place)."""
    for v in values:
        v.sort()
    sums, ties = sorted_rank_sums(values)
    return RankSums(
        levels=tuple(format_level(v) for v in levels),
        n=tuple(int(v.size) for v in values),
        rank_sum=tuple(sums),
        tie_term=float(ties),
    )


def _window_rank_sums(
    con: duckdb.DuckDBPyConnection, where_sql: str, params: list[Any], *, g: str, x: str
) -> RankSums:
    """:func:`rank_sums` by a window function over the pooled sample in DuckDB (for more values
    than numpy should hold: DuckDB's sort spills to disk)."""
    sql = f"""
        WITH s AS (SELECT {g} AS g, {x} AS x FROM {VIEW}{where_sql}),
        t AS (SELECT x, count(*) AS t FROM s GROUP BY x),
        r AS (SELECT x, t, sum(t) OVER (ORDER BY x) - t + (t + 1) / 2.0 AS rk FROM t)
        SELECT s.g, count(*), sum(r.rk),
               (SELECT CAST(sum(CAST(t AS HUGEINT) * t * t - t) AS DOUBLE) FROM t)
        FROM s JOIN r USING (x) GROUP BY s.g ORDER BY s.g
    """
    rows = execute(con, sql, params)
    if not rows:
        return RankSums((), (), (), 0.0)
    return RankSums(
        levels=tuple(format_level(r[0]) for r in rows),
        n=tuple(int(r[1]) for r in rows),
        rank_sum=tuple(float(r[2]) for r in rows),
        tie_term=float(rows[0][3]),
    )
