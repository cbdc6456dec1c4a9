"""Cost: what a configuration's time costs, the cost-versus-time Pareto front, the cheapest
configuration that meets a deadline, and McSherry's COST.

Per group (a configuration, or a machine type × node count for imported cloud trials) DuckDB
computes the count and the median of the time metric; the price of the group is then constant:

- ``machine=COL``: the column names a machine type; its hourly price comes from the ``prices``
  table (``runner import prices FILE``; a name imported again takes the latest row) or, for names
  not there, from the built-in table of paper 004 (Appendix C: EC2 type, vCPU, memory, $/hour).
  ``nodes=COL`` multiplies by a node-count column.
- ``usd_per_core_hour=X``: trials measured here are priced by the cores they held,
  ``workers × threads_per_worker × X``.

Cost of a trial = time × price / 3600; a group's median cost is its median time × its price.

COST ("Configuration that Outperforms a Single Thread", McSherry, Isard and Murray, 2015): for
each engine, the smallest number of cores (workers × threads_per_worker) whose configuration's
median time beats the best single-core configuration of the same workload and dataset, or
"never" within the measured range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    Selection,
    check_column,
    connect,
    execute,
    finite_check,
    fmt,
    format_level,
    no_trials_error,
    quote,
    render_table,
    select,
)
from analysis.defaults import DEFAULT_BY
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

#: Paper 004, Appendix C: (name, vCPU, memory GiB, USD per hour) of the EC2 types it used.
BUILTIN_PRICES: tuple[tuple[str, int, float, float], ...] = (
    ("m3.xlarge", 4, 15.0, 0.27),
    ("m3.2xlarge", 8, 30.0, 0.52),
    ("m4.xlarge", 4, 16.0, 0.20),
    ("m4.2xlarge", 8, 32.0, 0.40),
    ("m4.4xlarge", 16, 64.0, 0.80),
    ("c3.xlarge", 4, 7.5, 0.21),
    ("c3.2xlarge", 8, 15.0, 0.42),
    ("c3.4xlarge", 16, 30.0, 0.84),
    ("r3.xlarge", 4, 30.5, 0.33),
    ("r3.2xlarge", 8, 61.0, 0.67),
    ("r3.4xlarge", 16, 122.0, 1.33),
)
BUILTIN_SOURCE = "published:004 Appendix C"


@dataclass(frozen=True)
class Price:
    name: str
    vcpu: int | None
    memory_gb: float | None
    usd_per_hour: float
    source: str


def price_table(con: duckdb.DuckDBPyConnection, extra: Sequence[Price] = ()) -> dict[str, Price]:
    """The built-in prices, overridden by the database's ``prices`` rows (latest per name), then
    by ``extra`` (a prices file given for one analysis)."""
    table = {name: Price(name, v, m, usd, BUILTIN_SOURCE) for name, v, m, usd in BUILTIN_PRICES}
    rows = con.execute(
        "SELECT name, vcpu, memory_gb, usd_per_hour, source FROM prices ORDER BY rowid"
    ).fetchall()
    for name, vcpu, memory, usd, source in rows:
        table[str(name)] = Price(str(name), vcpu, memory, float(usd), str(source))
    for price in extra:
        table[price.name] = price
    return table


@dataclass(frozen=True)
class CostRow:
    level: dict[str, str]
    n: int
    median_s: float
    usd_per_hour: float
    median_cost_usd: float
    pareto: bool
    meets_deadline: bool | None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.level.items())


@dataclass(frozen=True)
class CostResult:
    metric: str
    by: tuple[str, ...]
    basis: str
    deadline_s: float | None
    rows: tuple[CostRow, ...]
    cheapest: CostRow | None  # the cheapest row meeting the deadline (or overall)
    where: tuple[str, ...] = field(default_factory=tuple)
    #: factors held fixed (the task): the Pareto front and the cheapest are per combination
    split: tuple[str, ...] = ()
    #: per combination of ``split`` (in order): its cheapest row, None when none qualifies
    cheapest_per_stratum: tuple[tuple[str, CostRow | None], ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cheapest"] = None if self.cheapest is None else self.cheapest.label
        out["cheapest_per_stratum"] = [
            {"stratum": label, "cheapest": None if row is None else row.label}
            for label, row in self.cheapest_per_stratum
        ]
        return out

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    **r.level,
                    "n": r.n,
                    "median_s": r.median_s,
                    "usd_per_hour": r.usd_per_hour,
                    "median_cost_usd": r.median_cost_usd,
                    "pareto": r.pareto,
                    "meets_deadline": r.meets_deadline,
                }
                for r in self.rows
            ]
        )

    def __str__(self) -> str:
        headers = [*self.by, "n", f"median {self.metric}", "$/hour", "median $", "pareto"]
        if self.deadline_s is not None:
            headers.append(f"<= {self.deadline_s:g} s")
        table = []
        for r in self.rows:
            row = [*r.level.values(), r.n, fmt(r.median_s), fmt(r.usd_per_hour, 4)]
            row += [fmt(r.median_cost_usd, 4), "*" if r.pareto else ""]
            if self.deadline_s is not None:
                row.append("yes" if r.meets_deadline else "no")
            table.append(row)
        lines = [f"cost of {self.metric} ({self.basis})", render_table(headers, table)]
        what = "meeting the deadline" if self.deadline_s is not None else "overall"
        if self.split:
            lines.append(f"held fixed: {', '.join(self.split)} (Pareto front and cheapest per "
                         "combination)")  # fmt: skip
        for label, best in self.cheapest_per_stratum:
            if best is None:
                lines.append(f"{label}: no configuration meets the deadline of "
                             f"{self.deadline_s:g} s")  # fmt: skip
            else:
                lines.append(
                    f"{label}: cheapest {what}: {best.label} (median "
                    f"${best.median_cost_usd:.6g} per trial, {best.median_s:.6g} s)"
                )
        if self.cheapest_per_stratum:
            pass  # said per stratum above
        elif self.cheapest is not None:
            what = "meeting the deadline" if self.deadline_s is not None else "overall"
            best = self.cheapest
            lines.append(
                f"cheapest {what}: {best.label} (median ${best.median_cost_usd:.6g} per trial, "
                f"{best.median_s:.6g} s)"
            )
        elif self.deadline_s is not None:
            lines.append(f"no configuration meets the deadline of {self.deadline_s:g} s")
        if self.where:
            lines.append("where " + " AND ".join(self.where))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _group_medians(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    by: Sequence[str],
    required: Sequence[str] = (),
) -> list[tuple[tuple[Any, ...], int, float]]:
    """Count and median of ``metric`` per combination of ``by`` (NULL is a level: imported
    trials may lack a dataset or a config_id); trials without a value in a ``required`` column
    are refused, naming the column."""
    cols = ", ".join(quote(c) for c in by)
    m = quote(metric)
    for c in required:
        where = sel.where_and(f"{m} IS NOT NULL", f"{quote(c)} IS NULL")
        missing = execute(con, f"SELECT count(*) FROM {VIEW}{where}", sel.params)[0][0]
        if missing:
            raise AnalysisError(
                f"{c} is missing in {missing} selected trials with {metric}, so they cannot be "
                f"priced; give them a {c}, or keep only trials that have one with a --where on "
                f"{c} (a trial without one matches no condition)"
            )
    finite_check(con, sel, [metric])
    where = sel.where_and(f"{m} IS NOT NULL")
    rows = execute(
        con,
        f"SELECT {cols}, count(*), median(CAST({m} AS DOUBLE)), "
        f"bool_and(isfinite(CAST({m} AS DOUBLE))) FROM {VIEW}{where} "
        f"GROUP BY ALL ORDER BY ALL",
        sel.params,
    )
    out = []
    for row in rows:
        *keys, n, median, finite = row
        assert finite, "finite_check let a non-finite value through"
        out.append((tuple(keys), int(n), float(median)))
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (time, cost): True when no other point is at least as good in both and better
    in one."""
    flags = []
    for i, (t, c) in enumerate(points):
        dominated = any(
            (t2 <= t and c2 <= c) and (t2 < t or c2 < c)
            for j, (t2, c2) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def cost(
    db: Database,
    *,
    metric: str = "train_s",
    by: Sequence[str] | None = None,
    machine: str | None = None,
    nodes: str | None = None,
    usd_per_core_hour: float | None = None,
    deadline_s: float | None = None,
    prices: Sequence[Price] = (),
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> CostResult:
    """Median time and cost per group, the Pareto front, and the cheapest group meeting
    ``deadline_s`` (seconds of median ``metric``)."""
    if (machine is None) == (usd_per_core_hour is None):
        raise AnalysisError(
            "price the trials one way: --machine COL (a column naming machine types, priced "
            "from the prices table) or --usd-per-core-hour X (cores held x X)"
        )
    if usd_per_core_hour is not None and not (
        math.isfinite(usd_per_core_hour) and usd_per_core_hour > 0
    ):
        raise AnalysisError(f"--usd-per-core-hour must be > 0, got {usd_per_core_hour:g}")
    if deadline_s is not None and not (math.isfinite(deadline_s) and deadline_s > 0):
        raise AnalysisError(f"--deadline must be a positive number of seconds, got {deadline_s:g}")
    price_cols = (
        [machine, *([nodes] if nodes else [])] if machine else ["workers", "threads_per_worker"]
    )
    keys = list(by) if by else ([] if machine else list(DEFAULT_BY))
    keys += [c for c in price_cols if c not in keys]
    with connect(db) as con:
        sel = select(
            con,
            metric=metric,
            group=keys,
            group_option="--by",
            where=where,
            include_warmup=include_warmup,
        )
        if nodes:
            check_column(sel.columns, nodes, "--nodes", numeric=True)
        required = [c for c in price_cols if c != "threads_per_worker"]
        groups = _group_medians(con, sel, metric=metric, by=keys, required=required)
        table = price_table(con, prices) if machine else {}
    if not groups:
        raise no_trials_error(sel, metric)
    rows = []
    one_thread = 0
    for values, n, median in groups:
        level = dict(zip(keys, (format_level(v) for v in values), strict=True))
        raw = dict(zip(keys, values, strict=True))
        if machine:
            name = str(raw[machine])
            if name not in table:
                raise AnalysisError(
                    f"no price for {machine}={name!r}; import one with `runner import prices "
                    f"FILE` or pass --prices FILE (known: {', '.join(sorted(table))})"
                )
            count = float(raw[nodes]) if nodes else 1.0
            hourly = table[name].usd_per_hour * count
        else:
            threads = raw["threads_per_worker"]
            if threads is None:  # imported trials without the column: one core per worker
                one_thread += n
                threads = 1
            cores = int(raw["workers"]) * int(threads)
            hourly = cores * float(usd_per_core_hour or 0)
        rows.append((level, n, median, hourly, median * hourly / 3600))
    front = pareto_front([(r[2], r[4]) for r in rows])
    out = tuple(
        CostRow(
            level,
            n,
            median,
            hourly,
            usd,
            on_front,
            None if deadline_s is None else median <= deadline_s,
        )
        for (level, n, median, hourly, usd), on_front in zip(rows, front, strict=True)
    )
    candidates = [r for r in out if r.meets_deadline is not False]
    cheapest = min(candidates, key=lambda r: (r.median_cost_usd, r.median_s), default=None)
    basis = (
        f"{machine}{' x ' + nodes if nodes else ''} priced per hour"
        if machine
        else f"workers x threads_per_worker x ${usd_per_core_hour:g} per core-hour"
    )
    notes = (
        (f"threads_per_worker is missing in {one_thread} trials: priced at 1 core per worker",)
        if one_thread
        else ()
    )
    return CostResult(
        metric, tuple(keys), basis, deadline_s, out, cheapest, sel.where_text, notes=notes
    )


# -- COST -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostMetricRow:
    workload: str
    dataset: str
    engine: str
    baseline_s: float  # best single-core median of this workload and dataset
    baseline: str  # which configuration it is
    cost_cores: int | None  # None: never within the measured range
    median_s: float | None  # the median of the configuration that beats the baseline
    max_cores: int  # largest configuration of this engine measured
    is_baseline: bool
    stratum: str = ""  # the other task factors held fixed (data_fraction=0.5, ...), if any

    @property
    def verdict(self) -> str:
        if self.is_baseline:
            return "baseline"
        if self.cost_cores is None:
            return f"never (up to {self.max_cores} cores)"
        return str(self.cost_cores)


@dataclass(frozen=True)
class CostMetricResult:
    metric: str
    rows: tuple[CostMetricRow, ...]
    where: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        for row, raw in zip(out["rows"], self.rows, strict=True):
            row["verdict"] = raw.verdict
        return out

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{**asdict(r), "verdict": r.verdict} for r in self.rows])

    def __str__(self) -> str:
        strata = any(r.stratum for r in self.rows)
        headers = ["workload", "dataset", "engine", "COST (cores)", f"median {self.metric}"]
        headers.append("single-core best")
        if strata:
            headers.insert(2, "held fixed")
        table = [
            [
                r.workload,
                r.dataset,
                *([r.stratum] if strata else []),
                r.engine,
                r.verdict,
                "-" if r.median_s is None else fmt(r.median_s),
                f"{fmt(r.baseline_s)} ({r.baseline})",
            ]
            for r in self.rows
        ]
        lines = [
            f"COST of {self.metric}: the fewest cores (workers x threads_per_worker) of each "
            "engine that beat the best single-core configuration",
            render_table(headers, table),
        ]
        if self.where:
            lines.append("where " + " AND ".join(self.where))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def cost_metric(
    db: Database,
    *,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> CostMetricResult:
    """McSherry's COST per engine, workload and dataset (configurations told apart by
    config_id; cores = workers x threads_per_worker)."""
    keys = ["workload", "dataset", "engine", "config_id", "workers", "threads_per_worker"]
    with connect(db) as con:
        sel = select(
            con,
            metric=metric,
            group=keys,
            group_option="--by",
            where=where,
            include_warmup=include_warmup,
        )
        groups = _group_medians(con, sel, metric=metric, by=keys, required=["workers"])
    if not groups:
        raise no_trials_error(sel, metric)
    by_task: dict[tuple[str, str], list[tuple[str, int, float]]] = {}
    for (workload, dataset, engine, _cid, workers, threads), _n, median in groups:
        cores = int(workers) * (1 if threads is None else int(threads))
        task = (format_level(workload), format_level(dataset))
        by_task.setdefault(task, []).append((format_level(engine), cores, median))
    rows = []
    for (workload, dataset), configs in sorted(by_task.items()):
        single = [c for c in configs if c[1] == 1]
        if not single:
            raise AnalysisError(
                f"COST needs a single-core configuration of {workload} on {dataset} "
                "(workers = threads_per_worker = 1, e.g. engine local) to compare with; run one"
            )
        base_engine, _, base_s = min(single, key=lambda c: c[2])
        for engine in sorted({c[0] for c in configs}):
            mine = sorted((c for c in configs if c[0] == engine), key=lambda c: (c[1], c[2]))
            beating = [c for c in mine if c[2] < base_s]
            first = min(beating, key=lambda c: (c[1], c[2])) if beating else None
            rows.append(
                CostMetricRow(
                    workload=workload,
                    dataset=dataset,
                    engine=engine,
                    baseline_s=base_s,
                    baseline=f"{base_engine}, 1 core",
                    cost_cores=None if first is None else first[1],
                    median_s=None if first is None else first[2],
                    max_cores=max(c[1] for c in mine),
                    is_baseline=engine == base_engine and first is None,
                )
            )
    return CostMetricResult(metric, tuple(rows), sel.where_text)
