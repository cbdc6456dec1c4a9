"""Comparisons that come from the data: every factor that varies, its levels compared with every
other factor held fixed.

A *task* is one source of trials and one workload (``measured`` and ``published:000`` trials,
and different workloads, are never pooled). Within a task a factor *varies* when its trials
take more than one value of it. For each varying factor F the trials are split into *strata*:
one per combination of the other varying factors, except those that are a function of F (they
change together with F, e.g. the threads that go with each worker count: they are named in the
label instead of splitting the strata). In each stratum with two or more levels of F, two
levels get Welch's t-test and more get a one-way ANOVA (with its checks); a stratum with a level
of fewer than two trials says so instead of a number. Factors that determine each other
(``instance`` and ``vcpu``) are compared once.

Only the analysis package's public functions compute statistics; the cell counts that decide
what to compare come from one GROUP BY over the ``observations`` view. Every level of every
comparison is one *cell* (a task and a value of each factor that varies in it: the compared
factor, the ones held fixed, the ones changing with it), so the per-level statistics of all
comparisons come from one batched pass of the analysis query layer
(:func:`analysis.query.level_stats` keyed by the task and its varying factors) and each test is
computed from its levels' statistics (:func:`analysis.anova.anova_of_levels`,
:func:`analysis.ttest.ttest_of_pair`), as the plain :func:`analysis.anova` and
:func:`analysis.ttest` compute them. A comparison the batch cannot answer exactly (a NULL or NaN
level, NaN or infinite values, values that need scaling) runs the plain function, which says
what is wrong or scales.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from analysis import AnalysisError, AnovaResult, Filter, TtestResult, anova, ttest
from analysis.strata import NOT_FACTORS
from reports.errors import ReportError

METRIC = "train_s"
ALPHA = 0.05
N_BOOT = 2000
SEED = 0
#: Comparisons run per report at most (the rest are counted, and --compare picks one factor).
MAX_TESTS = 60
#: Factor columns of ``trials`` (in the order comparisons are listed).
TRIAL_FACTORS = (
    "engine",
    "dataset",
    "workers",
    "threads_per_worker",
    "memory_gb",
    "batch_size",
    "epochs",
    "data_fraction",
)
TASK_KEYS = ("source", "workload")


@dataclass(frozen=True)
class Stratum:
    """One comparison's selection: the task, the fixed levels of the other factors."""

    task: tuple[Any, ...]  # (source, workload)
    fixed: tuple[tuple[str, Any], ...]  # (factor, level) held fixed
    along: tuple[str, ...]  # factors that change together with the compared one

    def filters(self) -> tuple[Filter, ...]:
        pairs = (*zip(TASK_KEYS, self.task, strict=True), *self.fixed)
        return tuple(Filter(k, "=", None if v is None else _level(v)) for k, v in pairs)

    @property
    def fixed_label(self) -> str:
        return ", ".join(f"{k}={_level(v)}" for k, v in self.fixed) or "nothing else varies"


@dataclass(frozen=True)
class Comparison:
    """One factor compared within one stratum: a t-test, an ANOVA, or the reason for neither."""

    factor: str
    stratum: Stratum
    levels: tuple[tuple[str, int], ...]  # (level, trials) compared
    ttest: TtestResult | None = None
    anova: AnovaResult | None = None
    reason: str = ""
    left_out: str = ""  # levels of too few trials dropped from a test that ran


@dataclass(frozen=True)
class FactorComparisons:
    task: tuple[Any, ...]
    factor: str
    aliases: tuple[str, ...]  # factors that determine it and it them (compared once)
    comparisons: tuple[Comparison, ...]
    note: str = ""  # why there is nothing to compare


@dataclass(frozen=True)
class CompareResult:
    metric: str
    factors: tuple[FactorComparisons, ...]
    skipped: int  # comparisons not run beyond MAX_TESTS
    requested: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def ttests(self) -> list[Comparison]:
        return [c for f in self.factors for c in f.comparisons if c.ttest is not None]

    @property
    def anovas(self) -> list[Comparison]:
        return [c for f in self.factors for c in f.comparisons if c.anova is not None]


@dataclass
class _Task:
    key: tuple[Any, ...]
    cells: list[tuple[tuple[Any, ...], int]] = field(default_factory=list)  # factor values, n
    #: factor values of the cells with a NaN or infinite metric (the plain analysis refuses them)
    nonfinite: set[tuple[Any, ...]] = field(default_factory=set)


def _level(value: Any) -> str:
    from analysis.data import format_level

    return format_level(value)


def parse_compare(items: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``engine=spark,ray`` -> ``(("engine", ("spark", "ray")),)``; ``engine`` alone compares
    every level of engine."""
    out = []
    for item in items:
        name, sep, levels = item.partition("=")
        name = name.strip()
        if not name.isidentifier():
            raise ReportError(
                f"--compare {item!r} is not FACTOR=LEVEL,LEVEL; write e.g. "
                "--compare engine=spark,ray"
            )
        chosen = tuple(v.strip() for v in levels.split(",") if v.strip()) if sep else ()
        if sep and len(chosen) < 2:
            raise ReportError(
                f"--compare {item!r} names fewer than two levels; give two or more, "
                "e.g. --compare engine=spark,ray (or just --compare engine for all levels)"
            )
        if len(set(chosen)) != len(chosen):
            raise ReportError(f"--compare {item!r} names a level twice")
        out.append((name, chosen))
    return tuple(out)


def factor_columns(con: Any) -> list[str]:
    """The observations columns that configure a trial: trial factors, then workload params."""
    view = {r[0] for r in con.execute("DESCRIBE observations").fetchall()}
    params = [
        str(r[0])
        for r in con.execute(
            "SELECT name FROM observation_columns WHERE kind = 'param' ORDER BY name"
        ).fetchall()
    ]
    params = [
        p
        for p in params
        if p in view and p not in NOT_FACTORS and not p.endswith("_printed") and p not in TASK_KEYS
    ]
    return [c for c in TRIAL_FACTORS if c in view] + [p for p in params if p not in TRIAL_FACTORS]


def _sql_order(value: Any) -> tuple[bool, bool, Any]:
    """``ORDER BY`` of one column's values in Python: ascending, NaN after numbers, NULL last."""
    if value is None:
        return (True, False, 0)
    if isinstance(value, float) and value != value:
        return (False, True, 0)
    return (False, False, value)


def _cells(
    con: Any,
    factors: Sequence[str],
    metric: str,
    combos: Sequence[tuple[Any, ...]] | None = None,
) -> dict[tuple[Any, ...], _Task]:
    """Trials with ``metric`` per task and combination of ``factors`` (ok, non-warm-up), in
    ``ORDER BY ALL`` order; from one GROUP BY, or from ``combos`` when the caller has those rows
    already (``(source, workload, *factors, count of metric, count of NaN or infinite metric)``,
    as the report's context reads them)."""
    from analysis.data import quote

    if combos is None:
        cols = [*TASK_KEYS, *factors]
        sel = ", ".join(quote(c) for c in cols)
        m = quote(metric)
        rows = con.execute(
            f"SELECT {sel}, count(*), count(*) FILTER (WHERE NOT isfinite(CAST({m} AS DOUBLE))) "
            f"FROM observations WHERE status = 'ok' AND NOT coalesce(warmup, false) "
            f"AND {m} IS NOT NULL GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    else:
        rows = sorted((r for r in combos if r[-2]), key=lambda r: tuple(_sql_order(v) for v in r))
    tasks: dict[tuple[Any, ...], _Task] = {}
    k = len(TASK_KEYS)
    for row in rows:
        key = tuple(row[:k])
        task = tasks.setdefault(key, _Task(key))
        values = tuple(row[k:-2])
        task.cells.append((values, row[-2]))
        if row[-1]:
            task.nonfinite.add(values)
    return tasks


def _function_of(cells: Sequence[tuple[tuple[Any, ...], int]], f: int, g: int) -> bool:
    """True when factor ``g`` takes one value for each value of factor ``f``."""
    seen: dict[Any, Any] = {}
    return all(seen.setdefault(values[f], values[g]) == values[g] for values, _ in cells)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def _plan(
    task: _Task,
    factors: Sequence[str],
    requested: dict[str, tuple[str, ...]],
) -> list[tuple[str, tuple[str, ...], list[tuple[Stratum, dict[Any, int]]], str]]:
    """Per varying factor: (factor, aliases, strata with level counts, note)."""
    cells = task.cells
    varying = [i for i in range(len(factors)) if len({values[i] for values, _ in cells}) > 1]
    plan = []
    done: set[int] = set()
    for f in varying:
        name = factors[f]
        if f in done or (requested and name not in requested):
            continue
        dependents = [g for g in varying if g != f and _function_of(cells, f, g)]
        aliases = tuple(factors[g] for g in dependents if _function_of(cells, g, f))
        done.update(g for g in dependents if _function_of(cells, g, f))
        along = tuple(factors[g] for g in dependents if factors[g] not in aliases)
        others = [g for g in varying if g != f and g not in dependents]
        strata: dict[tuple[Any, ...], dict[Any, int]] = {}
        for values, n in cells:
            key = tuple(values[g] for g in others)
            counts = strata.setdefault(key, {})
            counts[values[f]] = counts.get(values[f], 0) + n
        chosen = requested.get(name, ())
        out = []
        for key, counts in strata.items():
            if chosen:
                by_text = {_level(v): v for v in counts}
                counts = {by_text[c]: counts[by_text[c]] for c in chosen if c in by_text}
            if len(counts) < 2:
                continue
            stratum = Stratum(
                task=task.key,
                fixed=tuple((factors[g], v) for g, v in zip(others, key, strict=True)),
                along=along,
            )
            ordered = dict(sorted(counts.items(), key=lambda kv: _sort_key(kv[0])))
            if chosen:  # the user's order: a is the first level named
                ordered = counts
            out.append((stratum, ordered))
        note = ""
        if not out:
            note = f"{name} never takes two levels with the other factors held fixed" + (
                f" (levels chosen: {', '.join(chosen)})" if chosen else ""
            )
        plan.append((name, aliases, out, note))
    return plan


def _text(value: Any) -> str | None:
    return None if value is None else _level(value)


def _plain_value(value: Any) -> bool:
    """A level the batch answers as the plain analysis does (not NULL, not NaN)."""
    return value is not None and not (isinstance(value, float) and value != value)


class _Batch:
    """The statistics of every cell (a task and the values of the factors varying in it) of
    ``metric``: one :func:`analysis.query.level_stats` call per set of varying factors, made
    when a comparison first needs it. Each cell is its own stratum, so its scale is its own:
    a comparison whose cells all have scale 1 has scale 1 as a whole."""

    def __init__(
        self, con: Any, metric: str, factors: Sequence[str], tasks: dict[tuple[Any, ...], _Task]
    ) -> None:
        self.con, self.metric, self.factors = con, metric, list(factors)
        self.varying = {
            key: tuple(
                i for i in range(len(factors)) if len({values[i] for values, _ in t.cells}) > 1
            )
            for key, t in tasks.items()
        }
        self._stats: dict[tuple[int, ...], dict[tuple[str | None, ...], Any]] = {}

    def stats(self, task: _Task) -> dict[tuple[str | None, ...], Any]:
        """Cell (task and varying values as :func:`_level` text) -> its ``LevelStats``."""
        from analysis.anova_checks import FAR_OUT_K
        from analysis.data import select
        from analysis.query import level_stats

        cols = self.varying[task.key]
        if cols not in self._stats:
            same = [k for k, v in self.varying.items() if v == cols]
            where: list[Filter] = []
            if len(same) == 1:  # one task: read only its trials
                where = [Filter(k, "=", _text(v)) for k, v in zip(TASK_KEYS, task.key, strict=True)]
            keys = [*TASK_KEYS, *(self.factors[i] for i in cols)]
            sel = select(self.con, metric=self.metric, group=keys, where=where)
            rows = level_stats(self.con, sel, metric=self.metric, keys=keys, strata=len(keys),
                               far_k=FAR_OUT_K)  # fmt: skip
            self._stats[cols] = {tuple(_text(v) for v in r.key): r for r in rows}
        return self._stats[cols]

    def levels(
        self, task: _Task, factor: str, stratum: Stratum, counts: dict[Any, int]
    ) -> list[Any] | None:
        """The statistics of each level in ``counts`` (their order), keyed by the stored level
        as the plain analysis keys them; None when the batch cannot answer exactly."""
        from dataclasses import replace

        f = self.factors.index(factor)
        fixed = [(self.factors.index(k), _text(v)) for k, v in stratum.fixed]
        cols = self.varying[task.key]
        stats = self.stats(task)
        out = []
        for level, n in counts.items():
            if not _plain_value(level):
                return None
            text = _level(level)
            cells = [
                values
                for values, _ in task.cells
                if _text(values[f]) == text and all(_text(values[i]) == v for i, v in fixed)
            ]
            if any(values in task.nonfinite for values in cells):
                return None  # the plain analysis refuses them, with its message
            found = {(*map(_text, task.key), *(_text(values[i]) for i in cols)) for values in cells}
            if len(found) != 1:
                return None
            st = stats.get(found.pop())
            if st is None or st.n != n or st.scale != 1.0:
                return None
            out.append(replace(st, key=(*st.key[:-1], level)))
        return out


def _compare_one(
    con: Any,
    factor: str,
    stratum: Stratum,
    counts: dict[Any, int],
    all_levels: Iterable[Any],
    metric: str,
    batched: list[Any] | None = None,
) -> Comparison:
    levels = tuple((_level(v), n) for v, n in counts.items())
    small = [f"{lv}: {n}" for lv, n in levels if n < 2]
    if len(levels) - len(small) < 2:
        return Comparison(
            factor,
            stratum,
            levels,
            reason=f"too few trials to test ({factor} {', '.join(small)}; "
            "needs 2 or more per level)",
        )
    left_out = ""
    if small:
        left_out = f"left out with fewer than 2 trials: {factor} {', '.join(small)}"
        counts = {v: n for v, n in counts.items() if n >= 2}
        levels = tuple((lv, n) for lv, n in levels if n >= 2)
    where = list(stratum.filters())
    excluded = [v for v in all_levels if v not in counts]
    where += [Filter(factor, "!=", None if v is None else _level(v)) for v in excluded]
    try:
        if batched is not None:
            return _from_batch(con, factor, stratum, levels, left_out, where, batched, metric)
        if len(levels) == 2:
            res = ttest(
                con,
                group=factor,
                a=levels[0][0],
                b=levels[1][0],
                metric=metric,
                where=where,
                n_boot=N_BOOT,
                seed=SEED,
            )
            return Comparison(factor, stratum, levels, ttest=res, left_out=left_out)
        res_a = anova(con, group=factor, metric=metric, where=where, alpha=ALPHA)
        return Comparison(factor, stratum, levels, anova=res_a, left_out=left_out)
    except AnalysisError as exc:
        return Comparison(factor, stratum, levels, reason=str(exc))


def _from_batch(
    con: Any,
    factor: str,
    stratum: Stratum,
    levels: tuple[tuple[str, int], ...],
    left_out: str,
    where: list[Filter],
    batched: list[Any],
    metric: str,
) -> Comparison:
    """:func:`_compare_one` from the levels' batched statistics (``batched``, in ``levels``
    order): what the plain ``ttest`` / ``anova`` compute from the same statistics."""
    from analysis.data import GroupMoments, select

    sel = select(con, metric=metric, group=[factor], where=where)
    stats = [st for st in batched if st.n >= 2]
    if len(levels) == 2:
        from analysis.options import CONFIDENCE
        from analysis.ttest import ttest_of_pair

        ga, gb = (GroupMoments(_level(st.key[-1]), st.n, st.shift, st.mean_dev, st.var)
                  for st in stats)  # fmt: skip
        res = ttest_of_pair(con, sel, (stats[0].key[-1], stats[1].key[-1]), (ga, gb), (ga, gb),
                            1.0, (stats[0].quartiles[1], stats[1].quartiles[1]), metric=metric,
                            group=factor, test="welch", n_boot=N_BOOT, seed=SEED,
                            confidence_level=CONFIDENCE)  # fmt: skip
        return Comparison(factor, stratum, levels, ttest=res, left_out=left_out)
    from analysis.anova import anova_of_levels

    ordered = sorted(stats, key=lambda st: st.key[-1])  # as level_stats sorts its keys
    res_a = anova_of_levels(con, sel, ordered, metric=metric, group=factor, alpha=ALPHA)
    return Comparison(factor, stratum, levels, anova=res_a, left_out=left_out)


def compare(
    con: Any,
    *,
    metric: str = METRIC,
    requested: Sequence[tuple[str, Sequence[str]]] = (),
    max_tests: int = MAX_TESTS,
    combos: Sequence[tuple[Any, ...]] | None = None,
) -> CompareResult:
    """Every comparison the trials in ``con`` support (or those ``requested``: factor and
    levels, no levels meaning all). ``combos``: the rows ``(source, workload, *factors, trials
    with metric)`` of ok, non-warm-up trials, when the caller has read them already (else one
    GROUP BY here). Raises :class:`ReportError` for a requested factor or level
    the data do not have."""
    factors = factor_columns(con)
    req = {name: tuple(levels) for name, levels in requested}
    for name in req:
        if name in TASK_KEYS:
            raise ReportError(
                f"--compare {name}: trials of different {name}s are never pooled, so {name} "
                f"cannot be compared; compare a factor: {', '.join(factors)}"
            )
        if name not in factors:
            raise ReportError(
                f"--compare {name!r} is not a factor of these trials; factors: {', '.join(factors)}"
            )
    tasks = _cells(con, factors, metric, combos)
    for name, levels in req.items():
        i = factors.index(name)
        present = {_level(values[i]) for t in tasks.values() for values, _ in t.cells}
        missing = [lv for lv in levels if lv not in present]
        if missing:
            raise ReportError(
                f"--compare {name}: level {missing[0]!r} has no ok trials with {metric}; "
                f"levels present: {', '.join(sorted(present))}"
            )
    out: list[FactorComparisons] = []
    run = skipped = 0
    batch = _Batch(con, metric, factors, tasks)
    for key, task in tasks.items():
        for name, aliases, strata, note in _plan(task, factors, req):
            i = factors.index(name)
            all_levels = {values[i] for values, _ in task.cells}
            comps = []
            for stratum, counts in strata:
                if run >= max_tests:
                    skipped += 1
                    continue
                batched = batch.levels(task, name, stratum, counts)
                comp = _compare_one(con, name, stratum, counts, all_levels, metric, batched)
                run += comp.reason == ""
                comps.append(comp)
            out.append(FactorComparisons(key, name, aliases, tuple(comps), note))
    return CompareResult(
        metric=metric,
        factors=tuple(out),
        skipped=skipped,
        requested=tuple((n, tuple(v)) for n, v in req.items()),
    )
