"""Cost: what a configuration's time costs, the cost-versus-time Pareto front, the cheapest
configuration that meets a deadline, and McSherry's COST (:mod:`analysis.cost_metric`).

Per configuration DuckDB computes the count and the median of the time metric
(:mod:`analysis.cost_data`); its hourly price is then constant, from one of:

- ``machine=COL``: the column names a machine type; its hourly price comes from the ``prices``
  table (``runner import prices FILE``; a name imported again takes the latest row) or, for names
  not there, from the built-in table of paper 004 (Appendix C: EC2 type, vCPU, memory, $/hour).
  ``nodes=COL`` multiplies by a node-count column.
- ``usd_per_core_hour=X``: priced by the cores the trials held (``cores``, else
  ``workers x threads_per_worker``, else ``vcpu x nodes``: see :mod:`analysis.cost_data`) x X.
- neither: an hourly price column of the data (``usd_per_hour``, ``cost_usd_hr``, ...), if any;
  otherwise a one-line refusal naming the two options.

A configuration the data cannot price (no core count, no machine type, no hourly price) is kept
in the table unpriced and said in a note; it is on no Pareto front and never the cheapest.
Cost of a trial = time x price / 3600; a configuration's median cost is its median time x its
price. Text, frames and tables: :mod:`analysis.cost_text`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analysis.cost_data import CORES_TEXT, config_medians, cores_sql, hourly_column
from analysis.cost_metric import CostMetricResult, CostMetricRow, cost_metric
from analysis.data import (
    Database,
    Filter,
    check_column,
    connect,
    format_level,
    no_trials_error,
    quote,
    select,
)
from analysis.defaults import DEFAULT_BY
from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from analysis.tables import Table

__all__ = ["BUILTIN_PRICES", "CostMetricResult", "CostMetricRow", "CostResult", "CostRow",
           "Price", "cost", "cost_metric", "pareto_front", "price_table"]  # fmt: skip

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
    """One configuration. ``usd_per_hour`` and ``median_cost_usd`` are None when the data cannot
    price it; ``cores`` is the core count it was priced by (None unless priced per core)."""

    level: dict[str, str]
    n: int
    median_s: float
    usd_per_hour: float | None
    median_cost_usd: float | None
    pareto: bool
    meets_deadline: bool | None
    cores: float | None = None

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
        from analysis.cost_text import cost_dict

        return cost_dict(self)

    def to_frame(self) -> pd.DataFrame:
        from analysis.cost_text import cost_frame

        return cost_frame(self)

    def tables(self) -> list[Table]:
        """``configurations`` (main: every row, priced or not) and ``cheapest`` (per stratum)."""
        from analysis.cost_text import cost_tables

        return cost_tables(self)

    def __str__(self) -> str:
        from analysis.cost_text import cost_text

        return cost_text(self)


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


def _no_price_error(hourly_hint: str = "") -> AnalysisError:
    return AnalysisError(
        "cost needs a price: price the trials one way, --usd-per-core-hour X (the cores each "
        f"trial held: {CORES_TEXT}) or --machine COL (a column of machine types priced from "
        f"the prices table){hourly_hint}"
    )


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
    """Median time and cost per configuration, the Pareto front, and the cheapest configuration
    meeting ``deadline_s`` (seconds of median ``metric``)."""
    if machine is not None and usd_per_core_hour is not None:
        raise AnalysisError(
            "price the trials one way: --machine COL or --usd-per-core-hour X, not both"
        )
    if usd_per_core_hour is not None and not (
        math.isfinite(usd_per_core_hour) and usd_per_core_hour > 0
    ):
        raise AnalysisError(f"--usd-per-core-hour must be > 0, got {usd_per_core_hour:g}")
    if deadline_s is not None and not (math.isfinite(deadline_s) and deadline_s > 0):
        raise AnalysisError(f"--deadline must be a positive number of seconds, got {deadline_s:g}")
    keys = list(by) if by else ([] if machine else list(DEFAULT_BY))
    if machine:
        keys += [c for c in [machine, *([nodes] if nodes else [])] if c not in keys]
    with connect(db) as con:
        sel = select(con, metric=metric, group=keys, group_option="--by", where=where,
                     include_warmup=include_warmup)  # fmt: skip
        if nodes:
            check_column(sel.columns, nodes, "--nodes", numeric=True)
        hourly = None
        one_thread_sql = "false"
        if machine:
            basis_sql = "CAST(NULL AS DOUBLE)"
        elif usd_per_core_hour is not None:
            basis_sql, one_thread_sql = cores_sql(sel.columns)
            keys += [c for c in ("workers", "threads_per_worker")
                     if c in sel.columns and c not in keys]  # fmt: skip
        else:
            hourly = hourly_column(sel.columns)
            if hourly is None:
                raise _no_price_error("; the data have no hourly price column (usd_per_hour)")
            basis_sql = f"CAST({quote(hourly)} AS DOUBLE)"
        groups = config_medians(con, sel, metric=metric, by=keys, basis_sql=basis_sql,
                                one_thread_sql=one_thread_sql)  # fmt: skip
        table = price_table(con, prices) if machine else {}
    if not groups:
        raise no_trials_error(sel, metric)
    rows = []
    unpriced = [0, 0]  # configurations, trials
    one_node = 0
    for g in groups:
        raw = dict(zip(keys, g.keys, strict=True))
        hour: float | None
        cores = None
        if machine:
            name = raw[machine]
            count = raw[nodes] if nodes else 1.0
            if name is not None and str(name) not in table:
                raise AnalysisError(
                    f"no price for {machine}={str(name)!r}; import one with `runner import "
                    f"prices FILE` or pass --prices FILE (known: {', '.join(sorted(table))})"
                )
            if count is None:  # a published table without the column: one machine
                one_node += g.n
                count = 1.0
            hour = None if name is None else table[str(name)].usd_per_hour * float(count)
        elif usd_per_core_hour is not None:
            cores = g.price_basis
            hour = None if cores is None else cores * usd_per_core_hour
        else:
            hour = g.price_basis
        if hour is None:
            unpriced[0] += 1
            unpriced[1] += g.n
        level = {k: format_level(v) for k, v in raw.items()}
        if cores is not None and "cores" not in level:
            level["cores"] = format_level(cores)
        rows.append((level, g, hour, cores))
    priced = [i for i, r in enumerate(rows) if r[2] is not None]
    flags = pareto_front([(rows[i][1].median, rows[i][1].median * rows[i][2] / 3600)
                          for i in priced])  # fmt: skip
    front = dict(zip(priced, flags, strict=True))
    out = tuple(
        CostRow(
            level,
            g.n,
            g.median,
            hour,
            None if hour is None else g.median * hour / 3600,
            front.get(i, False),
            None if deadline_s is None else g.median <= deadline_s,
            cores,
        )  # fmt: skip
        for i, (level, g, hour, cores) in enumerate(rows)
    )
    candidates = [r for r in out if r.median_cost_usd is not None and r.meets_deadline is not False]
    cheapest = min(candidates, key=lambda r: (r.median_cost_usd, r.median_s), default=None)
    if machine:
        basis = f"{machine}{' x ' + nodes if nodes else ''} priced per hour"
        missing = f"{machine}"
        fix = f"give them one, or leave them out with --where (e.g. --where {machine}!=...)"
    elif usd_per_core_hour is not None:
        basis = f"cores held x ${usd_per_core_hour:g} per core-hour"
        missing = f"core count ({CORES_TEXT})"
        fix = "price them by machine type with --machine COL, or leave them out with --where"
    else:
        basis = f"{hourly} (USD per hour, from the data)"
        missing = f"{hourly}"
        fix = "price them with --usd-per-core-hour X or --machine COL"
    notes = []
    one_thread = sum(g.one_thread for g in groups)
    if one_thread:
        notes.append(
            f"threads_per_worker is missing in {one_thread} trials: priced at 1 core per worker"
        )
    if one_node:
        notes.append(f"{nodes} is missing in {one_node} trials: priced as 1 machine each")
    if unpriced[0]:
        notes.append(
            f"{unpriced[0]} configurations ({unpriced[1]} trials) have no {missing}, so they "
            f"are not priced: {fix}"
        )
    where_text = sel.where_text
    return CostResult(metric, tuple(level_keys(out, keys)), basis, deadline_s, out, cheapest,
                      where_text, notes=tuple(notes))  # fmt: skip


def level_keys(rows: Sequence[CostRow], keys: Sequence[str]) -> list[str]:
    """The columns of the rows' levels: ``keys``, then ``cores`` when a row was priced by it."""
    extra = [k for r in rows for k in r.level if k not in keys]
    return [*keys, *dict.fromkeys(extra)]
