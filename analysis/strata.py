"""Holding fixed what an analysis does not compare.

An analysis compares the levels of some columns (``--group``, ``--x``, a configuration). Every
other *factor* that varies among the selected trials — the trial factors (engine, workload,
dataset, workers, …), ``source`` and every workload param column of the observations view — is
either

- *split on*: the analysis runs once per combination of its values (a *stratum*), or
- *along* the compared columns: it takes one value per compared level (the threads that go with
  each worker count, the memory of each instance type), so it cannot be held fixed; it is named,
- *pooled* on purpose (``pool``), and named with its levels, or
- *refused*: a one-line :class:`AnalysisError` naming it and what resolves it (commands whose
  result cannot carry strata, e.g. a regression's omitted variables).

A factor that is a function of the factors already split on (``k`` of the KNN workload) is held
fixed by them and not split again. Trials of different hosts, CPU models or package versions
(``runs.env``: ``hostname``, ``cpu_model``, ``packages``) are never pooled unless asked (pyperf's
"incompatible benchmark"); the refusal names the fields and their values.

The plan comes from one ``GROUP BY`` over the selected trials (one row per configuration and
run), so it costs the same for ten trials or a million.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.cells import (
    ENV_FIELDS,
    Cells,
    env_fields,
    env_text,
    function_of,
    levels_text,
    load_cells,
    sort_key,
)
from analysis.data import Filter, format_level
from analysis.errors import AnalysisError
from analysis.stratified import StratifiedResult, StratumResult, run_strata

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ENV_FIELDS",
    "NOT_FACTORS",
    "POOL_ALL",
    "POOL_ENV",
    "TASK_FACTORS",
    "TRIAL_FACTORS",
    "Cells",
    "Plan",
    "StratifiedResult",
    "Stratum",
    "StratumResult",
    "check_pool",
    "factor_columns",
    "level_matches",
    "load_cells",
    "make_plan",
    "parse_pool",
    "run_strata",
]

# the names compare.py and held.py import from here
_env_fields, _env_text, _function_of = env_fields, env_text, function_of
_sort_key, _levels_text = sort_key, levels_text

#: Trial factor columns, the task first (labels read ``workload=knn, engine=dask``).
TRIAL_FACTORS = (
    "source",
    "workload",
    "dataset",
    "data_fraction",
    "epochs",
    "engine",
    "workers",
    "threads_per_worker",
    "memory_gb",
    "batch_size",
)
#: Factors that define the task (what is computed); a cost or COST is only compared within one.
TASK_FACTORS = ("source", "workload", "dataset", "data_fraction", "epochs")
#: Param columns that label trials rather than configure them.
NOT_FACTORS = frozenset(
    # ``estimator``: the library's full parameter set, derived from impl and the workload's keys
    {"table", "note", "seed", "repetition", "cluster_name", "estimator"}
)
#: ``pool`` names that pool every factor, or every environment field.
POOL_ALL, POOL_ENV = "all", "env"


def factor_columns(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> list[str]:
    """The view's factor columns: :data:`TRIAL_FACTORS`, then the workload params."""
    try:
        rows = con.execute(
            "SELECT name FROM observation_columns WHERE kind = 'param' ORDER BY name"
        ).fetchall()
    except Exception:  # a database without the catalogue: trial factors only
        rows = []
    params = [
        str(r[0])
        for r in rows
        if str(r[0]) in columns
        and str(r[0]) not in NOT_FACTORS
        and not str(r[0]).endswith("_printed")
        and str(r[0]) not in TRIAL_FACTORS
    ]
    return [c for c in TRIAL_FACTORS if c in columns] + params


def parse_pool(pool: Iterable[str] | str | bool | None) -> frozenset[str]:
    """``pool`` as a set of names: ``True`` or ``"all"`` -> ``{"all"}``; ``"a,b"`` -> both."""
    if pool is None or pool is False:
        return frozenset()
    if pool is True:
        return frozenset({POOL_ALL})
    items = [pool] if isinstance(pool, str) else list(pool)
    return frozenset(p.strip() for item in items for p in str(item).split(",") if p.strip())


def check_pool(pool: frozenset[str], known: Collection[str]) -> None:
    """A pooled name must be a factor, an environment field, ``all`` or ``env``."""
    allowed = {*known, *ENV_FIELDS, POOL_ALL, POOL_ENV}
    bad = sorted(pool - allowed)
    if bad:
        raise AnalysisError(
            f"--pool {bad[0]!r} is not a factor or environment field; pool one of "
            f"{', '.join([*known, *ENV_FIELDS])}, 'env' or 'all'"
        )


def _pooled(name: str, pool: frozenset[str]) -> bool:
    if POOL_ALL in pool or name in pool:
        return True
    return name in ENV_FIELDS and POOL_ENV in pool


def level_matches(value: Any, text: str) -> bool:
    """A stored level matches a level as typed (``2.0`` matches ``2``)."""
    if format_level(value) == text:
        return True
    try:
        return format_level(value) == format_level(float(text))
    except ValueError:
        return False


# -- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stratum:
    """One combination of the split factors: their values (as stored) and the trials in it."""

    fixed: tuple[tuple[str, Any], ...]
    n: int
    levels: tuple[tuple[Any, ...], ...]  # the compared columns' values present, sorted

    def filters(self) -> tuple[Filter, ...]:
        return tuple(Filter(k, "=", None if v is None else format_level(v)) for k, v in self.fixed)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={format_level(v)}" for k, v in self.fixed)


@dataclass(frozen=True)
class Plan:
    """What an analysis splits on, what changes along the compared columns, what is pooled."""

    compared: tuple[str, ...]
    split: tuple[str, ...]
    along: tuple[tuple[str, str], ...]  # (factor, "level: value; …")
    pooled: tuple[tuple[str, str], ...]  # (factor or env field, its levels)
    strata: tuple[Stratum, ...]
    env_along: tuple[str, ...] = ()  # environment differences between compared levels
    #: the trial counts the plan was made from (set by :func:`analysis.held.plan`: its
    #: ``extents`` give the batched analyses each level's minimum without another scan)
    cells: Cells | None = field(default=None, repr=False, compare=False)

    def notes(self) -> tuple[str, ...]:
        out = []
        if self.along:
            what = ", ".join(self.compared)
            out.append(
                f"changes together with {what} (cannot be held fixed): "
                + "; ".join(f"{f} ({how})" for f, how in self.along)
            )
        if self.env_along:
            out.append(
                f"the environment differs between the levels of {', '.join(self.compared)}: "
                + ", ".join(self.env_along)
            )
        if self.pooled:
            out.append(
                "pooled on purpose (--pool): " + "; ".join(f"{f} ({lv})" for f, lv in self.pooled)
            )
        return tuple(out)


def make_plan(
    cells: Cells,
    *,
    compared: Sequence[str],
    factors: Sequence[str],
    by: Sequence[str] = (),
    pool: frozenset[str] = frozenset(),
    splittable: Collection[str] | None = None,
    keep: Callable[[tuple[Any, ...]], bool] | None = None,
    refuse_hint: Callable[[Sequence[str]], str] | None = None,
    detect_along: bool = True,
    by_groups: bool = True,
) -> Plan:
    """Decide, for every varying factor of ``cells`` other than ``compared`` and ``by``, whether
    it is split on, along the compared columns, pooled or refused (see the module docstring).

    ``splittable`` limits the factors that may be split (None: all; ``()``: none, so every
    varying factor left is refused with ``refuse_hint(names)``). ``keep`` selects the cells by
    their compared values (e.g. the two levels of a t-test) before anything is decided.
    ``by`` columns split the result already (the analysis groups by them itself): what they
    determine is held fixed, and the environment is checked within each of their groups.
    ``by_groups=False`` when the ``by`` columns are compared with each other instead (a cost
    table's configurations): then they hold nothing fixed and the environment is checked across
    them.
    ``detect_along=False`` never names a factor "along" (every factor is split or refused).
    """
    ci = [cells.index(c) for c in compared]
    bi = [cells.index(b) for b in by]
    rows = [r for r in cells.rows if keep is None or keep(tuple(r[0][i] for i in ci))]
    candidates = [f for f in factors if f not in compared and f not in by]
    varying = [f for f in candidates if len({r[0][cells.index(f)] for r in rows}) > 1]

    pooled, along = [], []
    rest = []
    pooled_idx: list[int] = []
    for f in varying:
        fi = cells.index(f)
        values = [r[0][fi] for r in rows]
        if _pooled(f, pool):
            if not (pooled_idx and _function_of(rows, pooled_idx, fi)):
                pooled.append((f, _levels_text(values)))  # (k goes with workload: not named)
                pooled_idx.append(fi)
        elif detect_along and ci and _function_of(rows, ci, fi):
            if any(
                c in TASK_FACTORS and _function_of(rows, [cells.index(c)], fi) for c in compared
            ):
                continue  # a workload's own params (k goes with workload): nothing to say
            pairs = sorted({(tuple(r[0][i] for i in ci), r[0][fi]) for r in rows},
                           key=lambda p: tuple(_sort_key(v) for v in p[0]))  # fmt: skip
            how = "; ".join(
                f"{'/'.join(format_level(v) for v in lv)}: {format_level(val)}"
                for lv, val in pairs[:6]
            )
            along.append((f, how))
        else:
            rest.append(f)

    kept = list(bi) if by_groups else []
    split: list[str] = []
    refused: list[str] = []
    for f in rest:
        fi = cells.index(f)
        if pooled_idx and _function_of(rows, pooled_idx, fi):
            continue  # goes with a pooled factor (k with workload): pooled with it
        if kept and _function_of(rows, kept, fi):
            continue  # held fixed by what is already split on
        if detect_along and any(
            c in TASK_FACTORS and _function_of(rows, [cells.index(c), *kept], fi) for c in compared
        ):
            continue  # a compared task's own param, given the split (epochs per workload)
        if splittable is None or f in splittable:
            kept.append(fi)
            split.append(f)
        else:
            refused.append(f)
    if refused:
        # what the compared columns, the split factors and the refused factors named before
        # determine needs no name of its own (k goes with workload)
        joint = [*ci, *bi, *kept, *pooled_idx]
        named: list[str] = []
        for f in refused:
            if not _function_of(rows, joint, cells.index(f)):
                named.append(f)
                joint.append(cells.index(f))
        refused = named
    if refused:
        described = "; ".join(
            f"{f} ({_levels_text(r[0][cells.index(f)] for r in rows)})" for f in refused
        )
        hint = (
            refuse_hint(refused)
            if refuse_hint
            else f"fix them with --where, or pool them on purpose with --pool {','.join(refused)}"
        )
        raise AnalysisError(
            f"{described} vary in the selected trials but are not compared, so they would be "
            f"pooled; {hint}"
        )

    si = [cells.index(f) for f in split]
    groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], str, int]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[0][i] for i in si), []).append(r)
    env_along = _check_env(cells, groups, compared=compared, ci=ci,
                           by=bi if by_groups else [], pool=pool, split=split)  # fmt: skip
    for name in ENV_FIELDS:
        if _pooled(name, pool):
            values = {cells.env.get(r[1], {}).get(name) for r in rows} - {None}
            if len(values) > 1:
                pooled.append((name, _env_text(name, values)[len(name) + 2 : -1]))
    strata = []
    for key in sorted(groups, key=lambda k: tuple(_sort_key(v) for v in k)):
        members = groups[key]
        levels = sorted({tuple(r[0][i] for i in ci) for r in members},
                        key=lambda lv: tuple(_sort_key(v) for v in lv))  # fmt: skip
        strata.append(
            Stratum(
                fixed=tuple(zip(split, key, strict=True)),
                n=sum(r[2] for r in members),
                levels=tuple(levels),
            )
        )
    if not strata:
        strata.append(Stratum((), 0, ()))
    return Plan(
        compared=tuple(compared),
        split=tuple(split),
        along=tuple(along),
        pooled=tuple(pooled),
        strata=tuple(strata),
        env_along=env_along,
    )


def _check_env(
    cells: Cells,
    groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], str, int]]],
    *,
    compared: Sequence[str],
    ci: Sequence[int],
    by: Sequence[int],
    pool: frozenset[str],
    split: Sequence[str],
) -> tuple[str, ...]:
    """Refuse trials of different environments in one stratum (or one ``by`` group), unless
    pooled; differences between the levels of a compared ``run_id`` (or env field) are named."""
    between_levels = "run_id" in compared or any(c in ENV_FIELDS for c in compared)
    notes: list[str] = []
    for key, members in groups.items():
        subgroups: dict[tuple[Any, ...], list[Any]] = {}
        for r in members:
            subgroups.setdefault(tuple(r[0][i] for i in by), []).append(r)
        for sub in subgroups.values():
            for name in ENV_FIELDS:
                if _pooled(name, pool):
                    continue
                values = {cells.env.get(r[1], {}).get(name) for r in sub} - {None}
                if len(values) < 2:
                    continue
                if between_levels:
                    within = {}
                    for r in sub:
                        lv = tuple(r[0][i] for i in ci)
                        within.setdefault(lv, set()).add(cells.env.get(r[1], {}).get(name))
                    if all(len(v - {None}) < 2 for v in within.values()):
                        text = _env_text(name, values)
                        if text not in notes:
                            notes.append(text)
                        continue
                where = ", ".join(f"{k}={format_level(v)}" for k, v in zip(split, key, strict=True))
                raise AnalysisError(
                    f"the selected trials come from different environments: "
                    f"{_env_text(name, values)}"
                    f"{' in ' + where if where else ''}; compare trials of one with --where "
                    f"run_id=ID, or pool them on purpose with --pool {name}"
                )
    return tuple(notes)
