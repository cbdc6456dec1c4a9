"""Did this change make it faster? Two sets of trials (two runs, or two ``--where`` selections)
compared configuration by configuration, as Go's benchstat, pyperf's ``compare_to`` and critcmp
answer it.

Configurations are matched by their factor columns (every factor of :mod:`analysis.strata`
except those the two sides are defined by), or by ``config_id``. Per configuration present on both
sides:

- both medians (DuckDB's);
- ``test="mwu"`` (default, as benchstat): the Mann–Whitney U test, from mid-ranks of each
  configuration's values (one DuckDB scan hands them over, numpy ranks them; exact p for small
  samples without ties, as scipy), and the ratio ``new / base`` as
  ``exp`` of the Hodges–Lehmann shift of the log values with its distribution-free interval from
  the same U distribution — so the interval excludes 1 exactly when the test rejects (up to the
  normal approximation for large samples). A configuration of more than :data:`HL_MAX_PAIRS`
  pairs gets the log-scale Welch interval instead (said in ``ci_method``);
- ``test="welch"``: Welch's t-test on the log values (moments from DuckDB), the ratio of geometric
  means and its t interval.

The verdict is ``~`` (no significant change, p >= alpha), ``within noise`` (significant but
``|ratio - 1| < threshold``), or faster/slower (better/worse for metrics that are not times or
throughputs). A geometric-mean row summarises the matched configurations (benchstat's
``geomean``); configurations of one side only are listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analysis.cells import ENV_FIELDS, env_fields, env_text
from analysis.compare_result import COLUMNS, CompareResult, CompareRow
from analysis.compare_stats import (
    HIGHER_IS_BETTER,
    HL_MAX_PAIRS,
    Side,
    better_side,
    beyond_double,
    exp_ratio,
    hodges_lehmann,
    log_welch,
    ratio_text,
    side_test,
    u_null_cdf,
    verdict,
)
from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    as_filters,
    check_column,
    connect,
    execute,
    finite_check,
    format_level,
    quote,
    select,
)
from analysis.errors import AnalysisError
from analysis.options import ALPHA, CONFIDENCE, check_alpha, check_confidence
from analysis.smallsample import MIN_TRIALS, small_sample_note
from analysis.strata import _pooled, factor_columns, parse_pool

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "COLUMNS",
    "HIGHER_IS_BETTER",
    "HL_MAX_PAIRS",
    "LIST_MAX",
    "TESTS",
    "CompareResult",
    "CompareRow",
    "compare",
    "hodges_lehmann",
    "log_welch",
    "u_null_cdf",
    "verdict",
]

TESTS = ("mwu", "welch")
#: A side's values leave DuckDB (for the exact test and Hodges-Lehmann) up to this many.
LIST_MAX = 200_000


# -- DuckDB -----------------------------------------------------------------------------------
def _side_sql(
    sel: Selection, *, keys: Sequence[str], metric: str, side: int, overlap: Selection | None
) -> tuple[str, list[Any]]:
    """``SELECT key values…, x, run_id, side, in-overlap`` of one side's trials (``overlap``:
    the selection of trials on both sides, flagged in this side's rows)."""
    m = quote(metric)
    cols = "".join(f"{quote(k)} AS k{i}, " for i, k in enumerate(keys))
    ov, params = "false", []
    if overlap is not None and overlap.where_sql.startswith(" WHERE "):
        ov, params = f"({overlap.where_sql[len(' WHERE ') :]})", list(overlap.params)
    sql = (
        f"SELECT {cols}CAST({m} AS DOUBLE) AS x, run_id AS __run, {side} AS side, {ov} AS __ov "
        f"FROM {VIEW}{sel.where_and(f'{m} IS NOT NULL')}"
    )
    return sql, [*params, *sel.params]


def _summaries(
    con: duckdb.DuckDBPyConnection,
    base: Selection,
    new: Selection,
    both: Selection,
    *,
    keys: Sequence[str],
    metric: str,
) -> tuple[list[tuple], int]:
    """Per (configuration, side): the key values as the configuration's id, side, key values,
    n, median, min, mean and variance of ln x, the rank sum in the configuration's pooled
    sample, its tie term, the count of non-finite values, the runs and the sorted values (only
    where a statistic reads them: :func:`_needs_values`, else None); and the number of trials
    on both sides (see :func:`_summary_rows`)."""
    b_sql, b_params = _side_sql(base, keys=keys, metric=metric, side=0, overlap=both)
    n_sql, n_params = _side_sql(new, keys=keys, metric=metric, side=1, overlap=None)
    g = len(keys)
    raw = _summary_rows(con, b_sql, n_sql, [*b_params, *n_params], g, hashed=True)
    if len({r[-2] for r in raw}) != len({tuple(r[:g]) for r in raw}):  # pragma: no cover
        raw = _summary_rows(con, b_sql, n_sql, [*b_params, *n_params], g, hashed=False)
    rows = [(tuple(r[:g]), r[g], *r[:g], *r[g + 1 : -3], r[-1]) for r in raw]
    overlap = sum(int(r[-3]) for r in raw)
    return rows, overlap


def _summary_rows(
    con: duckdb.DuckDBPyConnection,
    b_sql: str,
    n_sql: str,
    params: list[Any],
    g: int,
    *,
    hashed: bool,
) -> list[tuple]:
    """The queries of :func:`_summaries`: per (key values, side) ``n, median, min, ln mean, ln
    variance, rank sum, tie term, non-finite count, runs, overlap count, key id, sorted values``
    (a list where :func:`_needs_values`, else None).

    One scan: a GROUP BY of the key columns and side gives the moments, the median and the
    side's values as one array (``list(x)``, handed over by
    :func:`analysis.ranks.fetch_with_values`); numpy sorts each configuration's two sides and
    ranks them in their pooled sample (:func:`analysis.ranks.sorted_rank_sums`: a value's
    mid-rank from the pooled values below it and up to it, exact integers; the tie term
    ``sum(t^3 - t)`` from the runs of equal values). The key id is ``hash`` of the key values
    (``hashed``; the caller checks that no two configurations share one), or the key columns
    themselves. In a store of more than :data:`analysis.query.HELD_MAX` trials (hashed) the
    GROUP BY leaves out the medians and values, which come from one scan per batch of
    configurations of at most :data:`analysis.query.HELD_VALUES` values, so neither DuckDB nor
    numpy holds more; a configuration of more values than that is ranked by a DuckDB window
    (which spills to disk)."""
    import numpy as np

    from analysis.query import HELD_MAX, HELD_VALUES, key_batches
    from analysis.ranks import fetch_with_values, sorted_rank_sums
    from analysis.runs import trial_rows

    ks = [f"k{i}" for i in range(g)]
    kk = "".join(k + ", " for k in ks)
    kid = f"hash({', '.join(ks)})" if ks and hashed else "0"
    src = f"(SELECT *, {kid} AS __h FROM ({b_sql}) UNION ALL SELECT *, {kid} FROM ({n_sql}))"
    batched = hashed and trial_rows(con) > HELD_MAX
    # the key id hashed once per group (the grouped key values), not per row as in src
    agg_sql = f"""SELECT {kk}side, count(*), {"NULL" if batched else "median(x)"}, min(x),
                   avg(ln(x)) FILTER (WHERE x > 0), var_samp(ln(x)) FILTER (WHERE x > 0),
                   count(*) FILTER (WHERE NOT isfinite(x)), list(DISTINCT __run),
                   count(*) FILTER (WHERE __ov), {kid}
                   {"" if batched else ", list(x) AS __x"}
            FROM {src} GROUP BY {kk}side"""
    arrays: list[np.ndarray] = []
    if batched:
        aggs = execute(con, f"{agg_sql} ORDER BY {kk}side", params)
    else:
        aggs, arrays = fetch_with_values(con, agg_sql, params, order=f"{kk}side")

    def rid(r: tuple) -> Any:
        return r[-1] if hashed else tuple(r[:g])

    sizes: dict[Any, dict[int, int]] = {}
    for r in aggs:
        sizes.setdefault(rid(r), {})[int(r[g])] = int(r[g + 1])
    rank_sum: dict[tuple[Any, int], float] = {}
    ties: dict[Any, int] = {}
    values: dict[tuple[Any, int], list[float]] = {}

    def rank(key: Any, sides: dict[int, np.ndarray]) -> None:
        order = sorted(sides)
        for s in order:
            sides[s].sort()
        sums, ties[key] = sorted_rank_sums([sides[s] for s in order])
        keep = _needs_values(sizes[key].get(0, 0), sizes[key].get(1, 0))
        for s, total in zip(order, sums, strict=True):
            rank_sum[(key, s)] = total
            if keep:
                values[(key, s)] = sides[s].tolist()

    def rank_all(keyed: list[tuple[Any, int]], arrays: list[np.ndarray]) -> None:
        """Rank each configuration of ``keyed`` ((key id, side) of each of ``arrays``)."""
        grouped: dict[Any, dict[int, np.ndarray]] = {}
        for (key, side), v in zip(keyed, arrays, strict=True):
            grouped.setdefault(key, {})[side] = v
        arrays.clear()
        while grouped:  # each configuration's arrays freed once ranked
            rank(*grouped.popitem())

    if not batched:
        rank_all([(rid(r), int(r[g])) for r in aggs], arrays)
    else:
        totals = {k: sum(c.values()) for k, c in sizes.items()}
        medians: dict[tuple[Any, int], float] = {}
        for batch in key_batches(dict.fromkeys(totals), totals, HELD_VALUES):
            part_src = f"(SELECT * FROM {src} WHERE list_contains(CAST(? AS UBIGINT[]), __h))"
            args = [*params, list(batch)]
            if sum(totals[k] for k in batch) <= HELD_VALUES:
                rows, got = fetch_with_values(
                    con,
                    f"SELECT __h, side, median(x), list(x) AS __x FROM {part_src} "
                    "GROUP BY __h, side",
                    args,
                    order="__h, side",
                )
                rank_all([(r[0], int(r[1])) for r in rows], got)
                for h, side, median in rows:
                    medians[(h, int(side))] = median
                continue
            # one configuration of more than HELD_VALUES values: DuckDB's window (it spills)
            for r in execute(con, _window_rank_sql(part_src), args):
                rank_sum[(r[0], int(r[1]))] = float(r[2])
                ties[r[0]] = ties.get(r[0], 0) + int(r[3])
            for h, side, median in execute(
                con, f"SELECT __h, side, median(x) FROM {part_src} GROUP BY __h, side", args
            ):
                medians[(h, int(side))] = median
        aggs = [(*r[: g + 2], medians[(r[-1], int(r[g]))], *r[g + 3 :]) for r in aggs]
    out = []
    for r in aggs:
        key, side = rid(r), int(r[g])
        out.append((*r[: g + 6], rank_sum[(key, side)], float(ties[key]), *r[g + 6 :],
                    values.get((key, side))))  # fmt: skip
    return out


def _window_rank_sql(source: str) -> str:
    """Per (key id, side) of ``source``: the mid-rank sum in the configuration's pooled sample
    and the side's share of the tie term, by a window over the configuration's values sorted:
    ``rank()`` is one more than the values below and ``count(*)`` (peers included) the values
    up to and with it, so the mid-rank is their mean and a value's ties ``t`` their difference
    plus one; each row adds ``t^2 - 1`` to the tie term (``t^3 - t`` per distinct value)."""
    return f"""SELECT __h, side, sum((__lo + __le) / 2.0),
               sum(CAST(__le - __lo + 1 AS HUGEINT) * (__le - __lo + 1) - 1)
        FROM (SELECT __h, side, rank() OVER win AS __lo, count(*) OVER win AS __le
              FROM (SELECT __h, side, x FROM {source}) WINDOW win AS (PARTITION BY __h ORDER BY x))
        GROUP BY __h, side"""


def _needs_values(n_base: int, n_new: int) -> bool:
    """Whether :func:`analysis.compare_stats.side_test` reads a configuration's values: both
    sides fetchable (``LIST_MAX``) and few enough pairs for Hodges-Lehmann (the exact U test
    needs a side of at most 8 trials, so it is among them)."""
    return 0 < n_base <= LIST_MAX and 0 < n_new <= LIST_MAX and n_base * n_new <= HL_MAX_PAIRS


def _run_env(con: duckdb.DuckDBPyConnection, runs: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not runs:
        return {}
    rows = con.execute("SELECT run_id, env FROM runs WHERE list_contains(?, run_id)",
                       [list(runs)]).fetchall()  # fmt: skip
    return {str(r): env_fields(e) for r, e in rows}


def _side_filters(side: str | Sequence[str | Filter], name: str) -> list[Filter]:
    if isinstance(side, str) and not any(op in side for op in "=<>!"):
        if not side.strip():
            raise AnalysisError(f"{name}: give a run id or --{name} COLUMN=VALUE")
        return [Filter("run_id", "=", side.strip())]
    filters = as_filters(side)
    if not filters:
        raise AnalysisError(f"{name}: give a run id or --{name} COLUMN=VALUE")
    return filters


# -- the analysis -----------------------------------------------------------------------------
def compare(
    db: Database,
    *,
    base: str | Sequence[str | Filter],
    new: str | Sequence[str | Filter],
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    test: str = "mwu",
    threshold: float = 0.0,
    alpha: float = ALPHA,
    confidence_level: float = CONFIDENCE,
    better: str | None = None,
    match: str = "factors",
    pool: Sequence[str] | str | bool | None = None,
    include_warmup: bool = False,
) -> CompareResult:
    """Compare ``metric`` of the ``new`` trials with the ``base`` trials, configuration by
    configuration. ``base``/``new``: a run id, or ``--where`` items selecting each side.
    ``threshold``: a significant change of ``|ratio - 1|`` below it is "within noise" (0.02:
    2%). ``better``: ``lower`` (times; default) or ``higher`` (throughput, accuracy: default
    for those names). ``match``: ``factors`` or ``config_id``. ``pool``: environment fields
    (``hostname``, ``cpu_model``, ``packages``, ``env``) allowed to differ within a side."""
    test = str(test).lower()
    if test not in TESTS:
        raise AnalysisError(f"--test {test!r}: give mwu (Mann-Whitney U) or welch")
    alpha, confidence_level = check_alpha(alpha), check_confidence(confidence_level)
    if not (math.isfinite(threshold) and 0 <= threshold < 1):
        raise AnalysisError(f"--threshold {threshold:g} must be a fraction in [0, 1), e.g. 2%")
    if match not in ("factors", "config_id"):
        raise AnalysisError(f"--match {match!r}: give factors or config_id")
    better = better_side(metric, better)
    base_f, new_f = _side_filters(base, "base"), _side_filters(new, "new")
    common = as_filters(where)
    pooled = parse_pool(pool)
    with connect(db) as con:
        sel_b = select(con, metric=metric, where=[*common, *base_f], include_warmup=include_warmup)
        sel_n = select(con, metric=metric, where=[*common, *new_f], include_warmup=include_warmup)
        both = select(con, metric=metric, where=[*common, *base_f, *new_f],
                      include_warmup=include_warmup)  # fmt: skip
        defining = {f.column for f in (*base_f, *new_f)} | {"run_id"}
        if match == "config_id":
            check_column(sel_b.columns, "config_id", "--match")
            keys = ["config_id"]
        else:
            keys = [f for f in factor_columns(con, sel_b.columns) if f not in defining]
        rows, overlap = _summaries(con, sel_b, sel_n, both, keys=keys, metric=metric)
        if any(row[2 + len(keys) + 7] for row in rows):  # the counts of finite_check's rule
            finite_check(con, sel_b, [metric])
            finite_check(con, sel_n, [metric])
        if overlap:
            raise AnalysisError(
                f"{overlap} trials are both base and new; give selections that do not overlap"
            )
        runs = sorted({r for row in rows for r in row[-2]})
        env = _run_env(con, runs)
    g = len(keys)
    sides: dict[str, dict[int, tuple]] = {}
    values_of: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        sides.setdefault(row[0], {})[int(row[1])] = row
        values_of[row[0]] = tuple(row[2 : 2 + g])
    if not rows:
        raise AnalysisError(
            f"no trials with {metric} on either side ({' '.join(map(str, base_f))} / "
            f"{' '.join(map(str, new_f))}); check the run ids or --base/--new"
        )

    # labels: the key columns that vary between configurations, less those the earlier ones
    # determine (k goes with workload)
    varying: list[int] = []
    for i in range(g):
        if len({v[i] for v in values_of.values()}) < 2:
            continue
        seen: dict[tuple[Any, ...], Any] = {}
        if varying and all(
            seen.setdefault(tuple(v[j] for j in varying), v[i]) == v[i] for v in values_of.values()
        ):
            continue
        varying.append(i)
    first = next(iter(values_of.values()))
    same = tuple(
        f"{keys[i]}={format_level(first[i])}"
        for i in range(g)
        if first[i] is not None and len({v[i] for v in values_of.values()}) == 1
    )

    def config(k: str) -> dict[str, str]:
        return {keys[i]: format_level(values_of[k][i]) for i in varying}

    notes = _env_notes(rows, env, pooled)
    out, only_base, only_new = [], [], []
    small: list[tuple[str, int]] = []
    shifts: list[float] = []  # each row's ln(ratio)
    for k in sorted(sides, key=lambda k: tuple(str(v) for v in values_of[k])):
        pair = sides[k]
        label = ", ".join(f"{a}={b}" for a, b in config(k).items()) or "all"
        if 0 not in pair or 1 not in pair:
            (only_new if 0 not in pair else only_base).append(label)
            continue
        sb, sn = _side(pair[0], g), _side(pair[1], g)
        if min(sb.minimum, sn.minimum) <= 0:
            raise AnalysisError(
                f"{metric} is zero or negative in {label}, so a ratio on the log scale is "
                f"undefined; compare a positive metric or exclude them with --where '{metric}>0'"
            )
        st = side_test(sb, sn, test=test, alpha=alpha, confidence_level=confidence_level)
        nb, nn, note = sb.n, sn.n, st.note
        if min(nb, nn) < MIN_TRIALS:
            few = f"few trials: base {int(nb)}, new {int(nn)} (< {MIN_TRIALS} per side)"
            note = f"{note}; {few}" if note else few
            small += [(f"{label} base", int(nb)), (f"{label} new", int(nn))]
        shifts.append(st.shift)
        ratio = exp_ratio(st.shift)
        if beyond_double(st.shift):  # 1e300 against 1e-300: the ratio kept in its logarithm
            shown = f"ratio {ratio_text(st.shift)}: beyond a double, shown as {ratio:g}"
            note = f"{shown}; {note}" if note else shown
        out.append(
            CompareRow(
                config=config(k),
                n_base=int(nb),
                n_new=int(nn),
                median_base=sb.median,
                median_new=sn.median,
                ratio=ratio,
                ratio_ci_low=exp_ratio(st.low),
                ratio_ci_high=exp_ratio(st.high),
                p_value=float(st.p_value),
                method=st.method,
                ci_method=st.ci_method,
                verdict=verdict(
                    ratio,
                    st.p_value,
                    alpha=alpha,
                    threshold=threshold,
                    better=better,
                    metric=metric,
                ),
                note=note,
            )  # fmt: skip
        )
    if not out:
        side_values = [
            [{values_of[k][i] for k in sides if s in sides[k]} for s in (0, 1)] for i in range(g)
        ]
        one_sided = [keys[i] for i, (vb, vn) in enumerate(side_values)
                     if (vb == {None}) != (vn == {None})]  # fmt: skip
        why = (
            f"; {', '.join(one_sided)} recorded on one side only (NULL on the other), so no "
            "configuration can match"
            if one_sided
            else ""
        )
        raise AnalysisError(
            f"no configuration is measured on both sides; only in base: {_few(only_base)}; "
            f"only in new: {_few(only_new)}{why}"
        )
    few_note = small_sample_note(small)
    if few_note:
        notes.append(few_note)
    gb = math.exp(math.fsum(math.log(r.median_base) for r in out) / len(out))
    gn = math.exp(math.fsum(math.log(r.median_new) for r in out) / len(out))
    # the mean of the rows' log ratios, not of the logs of their ratios (inf or 0 beyond a double)
    log_gr = math.fsum(shifts) / len(shifts)
    gr = exp_ratio(log_gr)
    if beyond_double(log_gr):
        notes.append(
            f"the geometric mean of the ratios is {ratio_text(log_gr)}: beyond a double, "
            f"shown as {gr:g}"
        )
    return CompareResult(
        metric=metric, test=test, base=tuple(map(str, base_f)), new=tuple(map(str, new_f)),
        better=better, alpha=alpha, threshold=threshold, confidence_level=confidence_level,
        rows=tuple(out), geomean_base=gb, geomean_new=gn, geomean_ratio=gr,
        only_base=tuple(only_base), only_new=tuple(only_new), same=same,
        where=tuple(map(str, common)), notes=tuple(notes),
    )  # fmt: skip


def _few(labels: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` labels, and how many there are in all."""
    shown = "; ".join(labels[:limit]) or "-"
    return shown + (f" … ({len(labels)} in all)" if len(labels) > limit else "")


def _side(row: tuple, g: int) -> Side:
    """One side of a configuration from its :func:`_summaries` row (``g`` key columns)."""
    n, median, low, log_mean, log_var, rank_sum, tie, bad, _, values = row[2 + g :]
    assert not bad, "finite_check let a non-finite value through"
    return Side(int(n), float(median), float(low), log_mean, log_var, float(rank_sum),
                float(tie), values)  # fmt: skip


def _env_notes(
    rows: Sequence[tuple], env: dict[str, dict[str, Any]], pooled: frozenset[str]
) -> list[str]:
    """Refuse a side whose trials come from different environments (unless pooled); name the
    differences between the sides."""
    side_runs: dict[int, set[str]] = {0: set(), 1: set()}
    for row in rows:
        side_runs[int(row[1])].update(row[-2])
    notes = []
    for name in ENV_FIELDS:
        per_side = [{env.get(r, {}).get(name) for r in side_runs[s]} - {None} for s in (0, 1)]
        for s, values in zip(("base", "new"), per_side, strict=True):
            if len(values) > 1 and not _pooled(name, pooled):
                raise AnalysisError(
                    f"the {s} trials come from different environments: "
                    f"{env_text(name, values)}; narrow --{s} to one, or pool them on purpose "
                    f"with --pool {name}"
                )
        union = per_side[0] | per_side[1]
        if len(union) > 1 and per_side[0] != per_side[1]:
            notes.append(f"base and new differ in {env_text(name, union)}")
    return notes
