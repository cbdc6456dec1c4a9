"""Every analysis with what it does not compare held fixed (what ``analyze`` runs).

The plain functions (:func:`analysis.ttest`, :func:`analysis.anova`, …) analyse the trials their
``where`` selects, whatever else varies among them; they are for callers whose ``where`` already
fixes every other factor (the report's strata, the paper claims). The functions here take the
same keyword arguments plus ``pool`` and decide what to hold fixed (:mod:`analysis.strata`):

- ``ttest``, ``power``, ``anova``, ``twoway``: one result per combination of the other varying
  factors, in a :class:`~analysis.strata.StratifiedResult` (strata where the compared levels
  were not both measured are listed with the reason);
- ``scaling``: the other varying factors join ``by`` (one scaling analysis per group; a group
  measured at one level of x is left out with a note);
- ``regress``: refuses, naming them (an omitted variable is the user's call: ``--x``, ``--by``,
  ``--where`` or ``--pool``);
- ``cost`` and ``cost_metric``: the task (:data:`~analysis.strata.TASK_FACTORS`) is held fixed,
  with a Pareto front and a cheapest configuration (or a COST) per task; a ``cost`` table keyed
  by ``by`` refuses other configuration factors that vary.

``pool`` names factors or environment fields (``hostname``, ``cpu_model``, ``packages``;
``env`` for the three, ``all`` for everything) to pool on purpose; the result says what was
pooled, with its levels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from analysis.data import (
    Database,
    Filter,
    Selection,
    connect,
    describe_where,
    is_numeric_type,
    select,
)
from analysis.errors import AnalysisError
from analysis.strata import (
    TASK_FACTORS,
    Plan,
    StratifiedResult,
    check_pool,
    factor_columns,
    level_matches,
    load_cells,
    make_plan,
    parse_pool,
    run_strata,
)

if TYPE_CHECKING:
    import duckdb

    from analysis.cost import CostMetricResult, CostResult
    from analysis.regress import RegressionResult
    from analysis.scaling import ScalingResult
    from analysis.twoway import TwoWayAnovaResult

Pool = Iterable[str] | str | bool | None
R = TypeVar("R")


def plan(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    compared: Sequence[str],
    required: Sequence[str],
    pool: Pool = None,
    by: Sequence[str] = (),
    keep: Callable[[tuple[Any, ...]], bool] | None = None,
    splittable: Collection[str] | None = None,
    refuse_hint: Callable[[Sequence[str]], str] | None = None,
    detect_along: bool = True,
    by_groups: bool = True,
) -> Plan:
    """The strata of a selection: :func:`analysis.strata.make_plan` over the view's factors."""
    numeric = [c for c in required if c in sel.columns and is_numeric_type(sel.columns[c])]
    factors = factor_columns(con, sel.columns)
    pooled = parse_pool(pool)
    check_pool(pooled, factors)
    # the non-finite rule of finite_check in the same scan: the whole command refuses, not
    # one stratum
    cells = load_cells(con, sel, columns=[*compared, *by, *factors], required=required,
                       finite=numeric)  # fmt: skip
    p = make_plan(
        cells,
        compared=compared,
        factors=factors,
        by=by,
        pool=pooled,
        splittable=splittable,
        keep=keep,
        refuse_hint=refuse_hint,
        detect_along=detect_along,
        by_groups=by_groups,
    )
    return replace(p, cells=cells)


def _two_levels(a: str, b: str) -> Callable[[tuple[Any, ...]], bool]:
    return lambda values: level_matches(values[0], str(a)) or level_matches(values[0], str(b))


def per_stratum(
    db: Database,
    plain: Callable[..., R],
    *,
    compared: Sequence[str],
    title: str,
    metric: str,
    where: Sequence[str | Filter],
    include_warmup: bool,
    pool: Pool,
    pair: tuple[str, str] | None = None,
    **arguments: Any,
) -> StratifiedResult[R]:
    """``plain(con, metric=..., where=[...stratum], include_warmup=..., **arguments)`` once per
    stratum of the trials that vary in something other than ``compared`` (the one shape every
    stratified analysis shares: select, plan, run per stratum). ``pair=(a, b)``: only the two
    levels ``a`` and ``b`` of ``compared[0]`` count; when one of them is absent altogether the
    plain function runs once on the whole selection, to say which levels exist."""
    with connect(db) as con:
        sel = select(con, metric=metric, group=list(compared), where=where,
                     include_warmup=include_warmup)  # fmt: skip
        keep = _two_levels(*pair) if pair else None
        p = plan(con, sel, compared=compared, required=[metric, *compared], pool=pool, keep=keep)

        def run(extra: tuple[Filter, ...]) -> R:
            return plain(con, metric=metric, where=[*sel.filters, *extra],
                         include_warmup=include_warmup, **arguments)  # fmt: skip

        if pair:
            present = {lv[0] for s in p.strata for lv in s.levels}
            if not all(any(level_matches(v, str(x)) for v in present) for x in pair):
                run(())  # raises: a level is not present
                raise AssertionError("unreachable")  # pragma: no cover
        return run_strata(p, run, title=title, where=sel.where_text)


def twoway(
    db: Database,
    *,
    groups: tuple[str, str],
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> StratifiedResult[TwoWayAnovaResult]:
    """:func:`analysis.twoway.twoway_anova` of ``groups`` once per stratum."""
    from analysis.twoway import twoway_anova as plain

    g1, g2 = groups
    return per_stratum(db, plain, compared=[g1, g2],
                       title=f"Two-way ANOVA of {metric} by {g1} and {g2}", metric=metric,
                       where=where, include_warmup=include_warmup, pool=pool, groups=(g1, g2),
                       **options)  # fmt: skip


def scaling(
    db: Database,
    *,
    x: str = "workers",
    metric: str = "train_s",
    by: Sequence[str] | str = ("engine", "workload"),
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> ScalingResult:
    """:func:`analysis.scaling.scaling` with every other varying factor added to ``by``."""
    from analysis.data import check_distinct
    from analysis.scaling import scaling as plain

    by = check_distinct(by, "--by")
    with connect(db) as con:
        sel = select(con, metric=metric, group=[x, *by], group_option="--by", where=where,
                     include_warmup=include_warmup)  # fmt: skip
        p = plan(con, sel, compared=[x], by=by, required=[metric, x], pool=pool)
        res = plain(con, x=x, metric=metric, by=[*by, *p.split], where=sel.filters,
                    include_warmup=include_warmup, skip_single_level=True, **options)  # fmt: skip
    notes = list(p.notes())
    if p.split:
        notes.insert(0, f"held fixed: {', '.join(p.split)} (added to --by)")
    return replace(res, notes=(*notes, *res.notes))


def regress(
    db: Database,
    *,
    y: str,
    x: Sequence[str] | str,
    by: Sequence[str] | str = (),
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> RegressionResult:
    """:func:`analysis.regress.regress`, refusing a factor that varies outside the model (not an
    x, not ``by``, not a function of them) unless pooled."""
    from analysis.data import check_column, check_distinct
    from analysis.regress import regress as plain

    xs = check_distinct(x, "--x")
    by = check_distinct(by, "--by")

    def hint(names: Sequence[str]) -> str:
        return (
            f"put them in the model (--x), fit one model per level (--by {names[0]}), fix "
            f"them (--where {names[0]}=...), or pool them on purpose (--pool {','.join(names)})"
        )

    with connect(db) as con:
        sel = select(con, metric=None, group=[*xs, *by], group_option="--x/--by", where=where,
                     include_warmup=include_warmup)  # fmt: skip
        check_column(sel.columns, y, "--y", numeric=True)  # before the plan reads it
        p = plan(con, sel, compared=xs, by=by, required=[y, *xs], pool=pool, splittable=(),
                 refuse_hint=hint)  # fmt: skip
        # the plan's scan applied the non-finite rule to y and the x's (finite_checked)
        res = plain(con, y=y, x=xs, by=by, where=sel.filters, include_warmup=include_warmup,
                    finite_checked=True, **options)  # fmt: skip
    return replace(res, notes=(*p.notes(), *res.notes))


def _row_keys(
    con: duckdb.DuckDBPyConnection, sel: Selection, *, metric: str, first: Sequence[str]
) -> list[str]:
    """A cost table's default configuration columns: ``first`` (what prices it), then every
    varying non-task factor that they and the earlier ones do not already determine."""
    from analysis.cells import function_of as _function_of

    factors = factor_columns(con, sel.columns)
    cells = load_cells(con, sel, columns=[*first, *factors], required=[metric])
    task = [cells.index(f) for f in factors if f in TASK_FACTORS]
    keys = list(first)
    for f in factors:
        if f in TASK_FACTORS or f in keys:
            continue
        fi = cells.index(f)
        if len({r[0][fi] for r in cells.rows}) < 2:
            continue
        # a workload's own params (k, hidden, ...) go with the task; what the keys so far
        # determine needs no column
        if _function_of(cells.rows, task, fi):
            continue
        if _function_of(cells.rows, [cells.index(k) for k in keys], fi):
            continue
        keys.append(f)
    return keys


def cost(
    db: Database,
    *,
    metric: str = "train_s",
    by: Sequence[str] | None = None,
    machine: str | None = None,
    nodes: str | None = None,
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
    **options: Any,
) -> CostResult:
    """:func:`analysis.cost.cost` per task (:data:`TASK_FACTORS` held fixed): its Pareto front
    and cheapest configuration. Without ``by`` the rows are keyed by every configuration factor
    that varies; with ``by``, another varying configuration factor is refused."""
    from analysis.cost import cost as plain

    if machine:
        price_cols = [machine, *([nodes] if nodes else [])]
    else:
        price_cols = ["workers", "threads_per_worker"]
    with connect(db) as con:
        sel = select(con, metric=metric, group=[*(by or []), *price_cols], group_option="--by",
                     where=where, include_warmup=include_warmup)  # fmt: skip
        if by:
            keys = list(dict.fromkeys([*by, *price_cols]))
        else:
            keys = _row_keys(con, sel, metric=metric, first=price_cols)
        configs = [k for k in keys if k not in TASK_FACTORS]

        def hint(names: Sequence[str]) -> str:
            return (
                f"add them to --by, fix them (--where {names[0]}=...), or pool them on purpose "
                f"(--pool {','.join(names)})"
            )

        p = plan(con, sel, compared=(), by=configs, required=[metric], pool=pool,
                 splittable=TASK_FACTORS, refuse_hint=hint, detect_along=False,
                 by_groups=False)  # fmt: skip
        split = list(p.split)
        row_keys = [*split, *(k for k in keys if k not in split)]
        parts: list[tuple[str, CostResult]] = []
        for s in p.strata:
            res = plain(con, metric=metric, by=row_keys, machine=machine, nodes=nodes,
                        where=[*sel.filters, *s.filters()], include_warmup=include_warmup,
                        **options)  # fmt: skip
            parts.append((s.label, res))
    first = parts[0][1]
    if len(parts) == 1 and not split:
        return replace(first, notes=(*p.notes(), *first.notes))
    notes = list(dict.fromkeys(n for _, r in parts for n in r.notes))
    return replace(
        first,
        rows=tuple(row for _, r in parts for row in r.rows),
        cheapest=None,
        where=sel.where_text,
        split=tuple(split),
        cheapest_per_stratum=tuple((label, r.cheapest) for label, r in parts),
        notes=(*p.notes(), *notes),
    )


def cost_metric(
    db: Database,
    *,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
    pool: Pool = None,
) -> CostMetricResult:
    """:func:`analysis.cost.cost_metric` per task (:data:`TASK_FACTORS` held fixed)."""
    from analysis.cost import cost_metric as plain

    with connect(db) as con:
        sel = select(con, metric=metric, where=where, include_warmup=include_warmup)
        factors = factor_columns(con, sel.columns)
        configs = [f for f in factors if f not in TASK_FACTORS]
        p = plan(con, sel, compared=(), by=configs, required=[metric], pool=pool,
                 splittable=TASK_FACTORS, detect_along=False, by_groups=False)  # fmt: skip
        shown = [f for f in p.split if f not in ("workload", "dataset")]
        rows = []
        first = None
        for s in p.strata:
            res = plain(con, metric=metric, where=[*sel.filters, *s.filters()],
                        include_warmup=include_warmup)  # fmt: skip
            first = first or res
            label = ", ".join(f"{k}={v}" for k, v in s.fixed if k in shown)
            rows += [replace(r, stratum=label) for r in res.rows]
    if first is None:
        raise AnalysisError(f"no trials match {describe_where(sel.filters)}")
    return replace(first, rows=tuple(rows), where=sel.where_text, notes=p.notes())


# the stratified t-test, power and one-way ANOVA (batched: one pair of GROUP BY passes for every
# stratum) live in analysis.held_batch; imported last, as it builds on plan() above
from analysis.held_batch import anova, power, ttest  # noqa: E402, F401
