"""How analyses read the store: the one place that writes the "shift, then moments" SQL and sets
up DuckDB connections for it.

Every analysis that needs per-group sufficient statistics calls :func:`moments`; no other module
writes its own moments SQL.

:func:`moments` — for a :class:`~analysis.data.Selection` and any tuple of key columns, per
combination of key values: the row count, and for each metric ``x = metric / scale`` (``scale``
a power of two, so the division is exact) its count, the *shift* (the key's minimum of ``x``,
or an exact shift passed in), and the mean and sample variance of ``x - shift``; plus any
further aggregates the caller names over the shifted values. Signature (stable)::

    moments(con, sel, *, metrics, keys=(), scale=1.0, shifts=None, aggregates=(),
            where=(), params=(), require="all", null_keys=False, values=None)
            -> list[KeyMoments]

- ``metrics``, ``keys``: column names of the ``observations`` view (quoted here), or raw SQL
  wrapped in :class:`Sql` (e.g. ``Sql("CAST(workers AS DOUBLE)")``);
- ``scale``: one power of two for every metric, or one per metric (1.0: no scaling);
- ``shifts``: ``{key tuple: (shift per metric, ...)}`` to use instead of the per-key minimum
  (pass 1 is then skipped); a key missing from the mapping is left out of the result;
- ``aggregates``: further SQL aggregates evaluated per key over the columns ``x0, x1, ...``
  (the scaled metrics), ``s0, ...`` (their shifts) and ``d0, ...`` (``x - s``), e.g.
  ``"sum(d0 * d1)"`` or ``"median(x0)"``; their values come back in ``KeyMoments.extra``;
- ``values``: with ``shifts``, further numbers per key (``{key tuple: (v0, v1, ...)}``, the
  same count for every key, exact DOUBLEs, NaN and infinities allowed) the ``aggregates`` may
  use as columns ``v0, v1, ...``, beside ``r0, r1, ...`` (each metric as stored, unscaled),
  e.g. ``"count_if(r0 > v0)"``: per-key thresholds ride the moments scan;
- ``where``/``params``: SQL conditions ANDed to the selection, and their ``?`` parameters;
- ``require``: ``"all"`` (default) keeps rows where every metric is non-NULL, ``"any"`` rows
  with at least one, ``"none"`` every selected row (``KeyMoments.n`` counts them; each
  :class:`Stat` counts its own non-NULL values);
- ``null_keys``: keep rows whose key values are NULL (as a key of their own); default: leave
  them out.

Results come sorted by the key values (NULLs last). The SQL is two passes of plain ``GROUP BY``
and no window function: pass 1 the per-key minima, pass 2 the moments of ``x - shift`` joined
to pass 1's small table. Subtracting a data value of the key (its minimum) before any sum keeps
every digit of ``1e12 + noise``; dividing by a power of two keeps 1e300's squares finite.

:func:`configure` applies the connection settings analyses run with (a memory limit);
:func:`analysis.data.connect` calls it on the connections it opens.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from analysis.data import VIEW, Selection, execute, quote
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "HELD_MAX",
    "HELD_VALUES",
    "KeyMoments",
    "Sql",
    "Stat",
    "configure",
    "key_batches",
    "moments",
    "scale_literal",
]

#: DuckDB's memory limit for analyses (the whole process stays within 1 GB at 100M trials:
#: aggregates spill or stream beyond it). ``TRIALKIT_DUCKDB_MEMORY`` overrides it.
MEMORY_LIMIT = "500MB"


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """Settings for analysis queries on a connection this package opened: a memory limit
    (``TRIALKIT_DUCKDB_MEMORY``), no Python replacement scans and, when
    ``TRIALKIT_DUCKDB_THREADS`` is set, DuckDB's thread count (default: DuckDB's, one per
    core)."""
    limit = os.environ.get("TRIALKIT_DUCKDB_MEMORY", MEMORY_LIMIT)
    # no replacement scans: a table name DuckDB does not know is an error, not a search of the
    # caller's Python variables for a DataFrame of that name
    stmts = [f"SET memory_limit = '{limit}'", "SET python_enable_replacements = false"]
    threads = os.environ.get("TRIALKIT_DUCKDB_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        stmts.append(f"SET threads = {int(threads)}")
    # preserve_insertion_order stays on: a bootstrap resamples fetched rows by position, so
    # their order (the store's) is part of its result
    for stmt in stmts:
        with contextlib.suppress(Exception):  # a setting refused: keep DuckDB's default
            con.execute(stmt)


@dataclass(frozen=True)
class Sql:
    """Raw SQL for a key or metric of :func:`moments` (a plain string is a column name)."""

    text: str


@dataclass(frozen=True)
class Stat:
    """One metric of one key: ``mean = shift + mean_dev`` (values divided by the scale)."""

    n: int  # non-NULL values
    shift: float  # NaN when n == 0
    mean_dev: float  # NaN when n == 0
    var: float  # sample variance (n - 1) of x - shift; NaN when n < 2

    @property
    def mean(self) -> float:
        return self.shift + self.mean_dev


@dataclass(frozen=True)
class KeyMoments:
    """Per key: its values (as stored), its row count, one :class:`Stat` per metric and the
    values of the extra aggregates."""

    key: tuple[Any, ...]
    n: int
    stats: tuple[Stat, ...]
    extra: tuple[Any, ...] = ()

    @property
    def stat(self) -> Stat:
        """The first (often the only) metric's statistics."""
        return self.stats[0]


def _sql(item: str | Sql) -> str:
    return item.text if isinstance(item, Sql) else quote(item)


def scale_literal(scale: float) -> str:
    """A power of two as an exact SQL DOUBLE literal."""
    if not (math.isfinite(scale) and scale > 0 and math.frexp(scale)[0] == 0.5):
        raise AnalysisError(f"internal: scale {scale!r} is not a positive power of two")
    return f"CAST('{float(scale)!r}' AS DOUBLE)"


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def moments(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metrics: Sequence[str | Sql],
    keys: Sequence[str | Sql] = (),
    scale: float | Sequence[float] = 1.0,
    shifts: Mapping[tuple[Any, ...], Sequence[float]] | None = None,
    aggregates: Sequence[str] = (),
    where: Sequence[str] = (),
    params: Sequence[Any] = (),
    require: str = "all",
    null_keys: bool = False,
    values: Mapping[tuple[Any, ...], Sequence[float]] | None = None,
) -> list[KeyMoments]:
    """Per key: counts, shifts, means and variances of ``metrics`` (see the module docstring)."""
    if not metrics:
        raise AnalysisError("internal: moments() needs at least one metric")
    if require not in ("all", "any", "none"):
        raise AnalysisError(f"internal: require={require!r}")
    scales = [scale] * len(metrics) if isinstance(scale, int | float) else list(scale)
    if len(scales) != len(metrics):
        raise AnalysisError("internal: one scale per metric")
    if values is not None and shifts is None:
        raise AnalysisError("internal: moments(values=...) needs shifts")
    nv = len(next(iter(values.values()), ())) if values else 0
    nk, nm = len(keys), len(metrics)
    ks = [f"k{i}" for i in range(nk)]
    cols = [f"{_sql(k)} AS k{i}" for i, k in enumerate(keys)]
    for i, (m, s) in enumerate(zip(metrics, scales, strict=True)):
        x = f"CAST({_sql(m)} AS DOUBLE)"
        cols.append(f"{x} / {scale_literal(float(s))} AS x{i}" if s != 1 else f"{x} AS x{i}")
        if nv:
            cols.append(f"{x} AS r{i}")
    conds = [] if null_keys else [f"{_sql(k)} IS NOT NULL" for k in keys]
    not_null = [f"{_sql(m)} IS NOT NULL" for m in metrics]
    if require == "all":
        conds += not_null
    elif require == "any":
        conds.append("(" + " OR ".join(not_null) + ")")
    conds += list(where)
    args: list[Any] = [*sel.params, *params]
    src = f"SELECT {', '.join(cols)} FROM {VIEW}{sel.where_and(*conds)}"
    shift_cols = [f"s{i}" for i in range(nm)]
    if shifts is None:
        group = f" GROUP BY {', '.join(ks)}" if ks else ""
        mins = ", ".join(f"min(x{i}) AS s{i}" for i in range(nm))
        shift_sql = f"SELECT {''.join(k + ', ' for k in ks)}{mins} FROM __src{group}"
    else:
        if not shifts:
            return []
        rows = []
        value_cols = [f"v{i}" for i in range(nv)]
        for key, got in shifts.items():
            if len(key) != nk or len(got) != nm:
                raise AnalysisError("internal: a shift per metric for each key tuple")
            more = list(values.get(key, [math.nan] * nv)) if values else []
            if len(more) != nv:
                raise AnalysisError("internal: as many values for each key")
            lits = [f"CAST('{float(v)!r}' AS DOUBLE)" for v in [*got, *more]]
            rows.append("(" + ", ".join(["?"] * nk + lits) + ")")
            args += list(key)
        names = ", ".join(ks + shift_cols + value_cols)
        shift_sql = f"SELECT * FROM (VALUES {', '.join(rows)}) AS t({names})"
    if ks:
        on = " AND ".join(f"__src.{k} IS NOT DISTINCT FROM __s.{k}" for k in ks)
        join = f"__src JOIN __s ON {on}"
    else:
        join = "__src CROSS JOIN __s"
    dev = ", ".join(f"x{i} - s{i} AS d{i}" for i in range(nm))
    keysel = "".join(f"__src.{k} AS {k}, " for k in ks)
    xs = ", ".join(f"x{i}, s{i}" for i in range(nm))
    if nv:
        xs += "".join(f", r{i}" for i in range(nm)) + "".join(f", v{i}" for i in range(nv))
    aggs = ["count(*)"]
    for i in range(nm):
        aggs += [f"count(x{i})", f"min(s{i})", f"avg(d{i})", f"var_samp(d{i})"]
    aggs += list(aggregates)
    group = f" GROUP BY {', '.join(ks)} ORDER BY {', '.join(ks)}" if ks else ""
    sql = (
        f"WITH __src AS ({src}), __s AS ({shift_sql}) "
        f"SELECT {''.join(k + ', ' for k in ks)}{', '.join(aggs)} "
        f"FROM (SELECT {keysel}{xs}, {dev} FROM {join}){group}"
    )
    out = []
    for row in execute(con, sql, args):
        key, rest = tuple(row[:nk]), row[nk:]
        n = int(rest[0])
        stats = []
        for i in range(nm):
            cnt, s, mean_dev, var = rest[1 + 4 * i : 5 + 4 * i]
            stats.append(Stat(int(cnt), _float(s), _float(mean_dev), _float(var)))
        if shifts is not None and n == 0:
            continue
        out.append(KeyMoments(key, n, tuple(stats), tuple(rest[1 + 4 * nm :])))
    if not ks and out and out[0].n == 0:
        return []
    return out


# -- per-level statistics for the one-way layout ------------------------------------------------
#: Magnitudes outside ``[2**-SCALE_EXP, 2**SCALE_EXP]`` are divided by a power of two first.
SCALE_EXP = 400


def power_of_two_scale(big: float | None) -> float:
    """1, or when ``big`` (the largest magnitude) is beyond ``2**400`` (squares near overflow)
    or below ``2**-400`` (squares near underflow), the power of two at or below it."""
    if big is None or not math.isfinite(big) or big == 0:
        return 1.0
    if math.ldexp(1.0, -SCALE_EXP) <= big <= math.ldexp(1.0, SCALE_EXP):
        return 1.0
    return math.ldexp(1.0, math.frexp(big)[1] - 1)


@dataclass(frozen=True)
class LevelStats:
    """One key (the stratum's values, then the level) of :func:`level_stats`; every value is of
    ``x = metric / scale``."""

    key: tuple[Any, ...]
    n: int
    scale: float  # a power of two, one per stratum
    shift: float  # the key's minimum of x
    mean_dev: float  # mean of x - shift
    var: float  # sample variance; NaN when n < 2
    quartiles: tuple[float, float, float]  # q1, median, q3 (linear interpolation)
    abs_mean: float  # mean of |x - median| (Brown-Forsythe)
    abs_var: float  # its sample variance
    far_out: int  # values beyond q1 - k IQR or q3 + k IQR


#: A store of more trials than this (:func:`analysis.runs.trial_rows`, from the catalogue):
#: analyses whose one-scan path holds every selected value (medians, a rank sort) count first
#: and batch by :data:`HELD_VALUES`.
HELD_MAX = 25_000_000

#: Values an aggregate that holds them (``quantile_cont``, ``median``, a window's sort) may hold
#: at once: above this many in all, such a pass runs one scan per batch of keys of at most this
#: many values (a key of more is a batch of its own), so 100M trials stay within DuckDB's
#: memory limit. 10M values fit in one scan.
HELD_VALUES = 10_000_000

K = TypeVar("K")
V = TypeVar("V")


def key_batches(rows: Mapping[K, V], counts: Mapping[K, int], held: int) -> list[dict[K, V]]:
    """``rows`` in one dict when their ``counts`` sum to at most ``held``, else split in key
    order into batches of at most ``held`` (a key of more is a batch of its own)."""
    if sum(counts[k] for k in rows) <= held:
        return [dict(rows)]
    out: list[dict[K, V]] = []
    size = 0
    for key, value in rows.items():
        if not out or size + counts[key] > held:
            out.append({})
            size = 0
        out[-1][key] = value
        size += counts[key]
    return out


def _values(
    rows: dict[tuple[Any, ...], Sequence[float]], nk: int, names: Sequence[str]
) -> tuple[str, list[Any]]:
    """A VALUES table of one row per key: the key values as parameters, then exact DOUBLEs."""
    lines, args = [], []
    for key, values in rows.items():
        lits = [f"CAST('{float(v)!r}' AS DOUBLE)" for v in values]
        lines.append("(" + ", ".join(["?"] * nk + lits) + ")")
        args += list(key)
    cols = ", ".join([*(f"k{i}" for i in range(nk)), *names])
    return f"SELECT * FROM (VALUES {', '.join(lines)}) AS t({cols})", args


def level_stats(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    keys: Sequence[str],
    strata: int,
    far_k: float = 3.0,
    quartiles: bool = True,
    spread: bool = True,
    extent: Mapping[tuple[Any, ...], tuple[int, float, float]] | None = None,
    where: Sequence[str] = (),
    params: Sequence[Any] = (),
) -> list[LevelStats]:
    """Per combination of ``keys`` (the first ``strata`` of them define a stratum, the rest a
    level): moments, quartiles, moments of ``|x - median|`` and Tukey's far-out count, in three
    plain GROUP BY passes, each joined to the small per-key table of the one before: (1) count,
    min and max ``|x|``; (2) moments and quartiles (``quantile_cont``, an aggregate) of
    ``d = x - min`` (one scan per batch of keys above :data:`HELD_VALUES` values: the quartiles
    hold them); (3) moments of ``|d - median|`` and the values beyond the fences. Values
    relative to the key's minimum, as every moment here: ``1e12 + noise`` keeps its noise and
    its medians. The scale is one per stratum (:func:`power_of_two_scale` of its largest
    magnitude). ``quartiles=False`` leaves them out of pass 2 (NaN), ``spread=False`` skips pass
    3 (NaN, far-out 0). Rows with a NULL metric or key are left out; sorted by key.

    ``extent``: pass 1's answer when the caller has it (``{key: (count, min x, max |x|)}`` for
    every key, of the metric as stored, e.g. from :attr:`analysis.cells.Cells.extents`):
    pass 1 is then skipped and a key missing from it left out. ``where``/``params``: SQL
    conditions ANDed to the selection (e.g. only two levels), and their ``?`` parameters."""
    nk = len(keys)
    ks = [f"k{i}" for i in range(nk)]
    x = f"CAST({quote(metric)} AS DOUBLE)"
    conds = [f"{quote(k)} IS NOT NULL" for k in keys] + [f"{quote(metric)} IS NOT NULL"]
    conds += list(where)
    cols = ", ".join(f"{quote(k)} AS k{i}" for i, k in enumerate(keys))
    src = f"SELECT {cols + ', ' if cols else ''}{x} AS x FROM {VIEW}{sel.where_and(*conds)}"
    kk = "".join(k + ", " for k in ks)
    group = f" GROUP BY {', '.join(ks)}" if ks else ""
    on = " AND ".join(f"__src.{k} = __p.{k}" for k in ks) or "true"  # keys are not NULL
    keysel = "".join(f"__src.{k} AS {k}, " for k in ks)

    def joined(table: str, args: list[Any], select: str, inner: str) -> list[tuple]:
        sql = (
            f"WITH __src AS ({src}), __p AS ({table}) SELECT {kk}{select} FROM ("
            f"SELECT {keysel}{inner} FROM __src JOIN __p ON {on}){group}"
        )
        return [tuple(r) for r in execute(con, sql, [*sel.params, *params, *args])]

    if extent is None:
        pass1 = execute(con, f"SELECT {kk}count(*), min(x), max(abs(x)) FROM ({src}){group}",
                        [*sel.params, *params])  # fmt: skip
    else:
        pass1 = [(*k, *v) for k, v in extent.items()]
    pass1 = [r for r in pass1 if r[nk]]
    if not pass1:
        return []
    big: dict[tuple[Any, ...], float] = {}
    for r in pass1:
        big[tuple(r[:strata])] = max(big.get(tuple(r[:strata]), 0.0), float(r[nk + 2]))
    scales = {s: power_of_two_scale(b) for s, b in big.items()}
    p1 = {tuple(r[:nk]): (scales[tuple(r[:strata])], float(r[nk + 1])) for r in pass1}
    p1 = {k: (sc, lo / sc) for k, (sc, lo) in p1.items()}
    quantiles = "quantile_cont(d, [0.25, 0.5, 0.75])" if quartiles else "[NULL, NULL, NULL]"
    counts = {tuple(r[:nk]): int(r[nk]) for r in pass1}
    pass2 = []
    # quantile_cont holds every value of a key: beyond HELD_VALUES in all, one scan per batch
    for batch in key_batches(p1, counts, HELD_VALUES) if quartiles else [p1]:
        table, args = _values(batch, nk, ["sc", "s"])
        pass2 += joined(table, args, f"count(*), avg(d), var_samp(d), {quantiles}",
                        "__src.x / sc - s AS d")  # fmt: skip
    p2 = {}
    for r in pass2 if spread and quartiles else ():
        q1, med, q3 = (float(q) for q in r[nk + 3])
        p2[tuple(r[:nk])] = (
            *p1[tuple(r[:nk])],
            med,
            q1 - far_k * (q3 - q1),
            q3 + far_k * (q3 - q1),
        )
    third: dict[tuple[Any, ...], Sequence[Any]] = {}
    if p2:
        table, args = _values(p2, nk, ["sc", "s", "med", "lo", "hi"])
        pass3 = joined(table, args, "avg(abs(d - med)), var_samp(abs(d - med)), "
                   "count_if(d < lo OR d > hi)",
                       "__src.x / sc - s AS d, med, lo, hi")  # fmt: skip
        third = {tuple(r[:nk]): r[nk:] for r in pass3}
    out = []
    for r in sorted(pass2, key=lambda r: [_sort(v) for v in r[:nk]]):
        key = tuple(r[:nk])
        n, mean_dev, var, quartiles = r[nk:]
        sc, shift = p1[key]
        abs_mean, abs_var, far = third.get(key, (None, None, 0))
        out.append(
            LevelStats(
                key,
                int(n),
                sc,
                shift,
                _float(mean_dev),
                _float(var),
                tuple(shift + _float(q) for q in quartiles),  # type: ignore[arg-type]
                _float(abs_mean),
                _float(abs_var),
                int(far),
            )  # fmt: skip
        )
    return out


def _sort(v: Any) -> tuple[int, Any]:
    """Sort keys as SQL's ORDER BY does here: values, NULLs last."""
    if v is None:
        return (2, 0)
    return (0, v)
