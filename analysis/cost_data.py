"""What :mod:`analysis.cost` and :mod:`analysis.cost_metric` read from DuckDB: per configuration
the count and median of the time, and what prices it (the cores it held, or its hourly price).

The cores a trial held, first that the data have (so a published table that gives ``cores`` or
``vcpu`` instead of workers is priced too):

1. ``cores`` (a published table's total cores);
2. ``workers x threads_per_worker`` (a trial measured here; a missing ``threads_per_worker`` is
   one core per worker, counted so the result can say it);
3. ``vcpu x nodes`` (or ``x machines``; 1 when neither is given): a machine type's vCPUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis import query
from analysis.data import VIEW, Selection, execute, finite_check, is_numeric_type, quote
from analysis.runs import trial_rows

if TYPE_CHECKING:
    import duckdb

#: Columns holding a trial's hourly price in US dollars (as ``runner import prices`` reads them),
#: used when no price is given.
HOURLY_COLUMNS = ("usd_per_hour", "cost_usd_hr", "cost_hr", "usd_hour")
#: What a core count is made of, for messages.
CORES_TEXT = "cores, workers x threads_per_worker, or vcpu x nodes"


def _num(columns: dict[str, str], name: str) -> str | None:
    if name in columns and is_numeric_type(columns[name]):
        return f"CAST({quote(name)} AS DOUBLE)"
    return None


def cores_sql(columns: dict[str, str]) -> tuple[str, str]:
    """SQL for the cores a trial held (NULL when the data do not say) and SQL that is true when
    they came from workers without a ``threads_per_worker`` (one core per worker)."""
    cores, workers = _num(columns, "cores"), _num(columns, "workers")
    threads, vcpu = _num(columns, "threads_per_worker"), _num(columns, "vcpu")
    parts = [cores] if cores else []
    one_thread = "false"
    if workers:
        parts.append(f"{workers} * coalesce({threads}, 1.0)" if threads else workers)
        missing = f"{threads} IS NULL" if threads else "true"
        before = f"{cores} IS NULL AND " if cores else ""
        one_thread = f"({before}{workers} IS NOT NULL AND {missing})"
    if vcpu:
        count = [c for c in (_num(columns, "nodes"), _num(columns, "machines")) if c]
        parts.append(f"{vcpu} * coalesce({', '.join([*count, '1.0'])})")
    if not parts:
        return "CAST(NULL AS DOUBLE)", "false"
    return (f"coalesce({', '.join(parts)})" if len(parts) > 1 else parts[0]), one_thread


def hourly_column(columns: dict[str, str]) -> str | None:
    """The first numeric column of :data:`HOURLY_COLUMNS` in the view, if any."""
    return next((c for c in HOURLY_COLUMNS if _num(columns, c)), None)


@dataclass(frozen=True)
class ConfigMedian:
    """One configuration: its ``by`` values, what prices it (cores, or an hourly price; None
    when the data do not say), its trial count, median time, and trials priced at one core per
    worker for want of a ``threads_per_worker``."""

    keys: tuple[Any, ...]
    price_basis: float | None
    n: int
    median: float
    one_thread: int


def config_medians(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    by: Sequence[str],
    basis_sql: str,
    one_thread_sql: str = "false",
) -> list[ConfigMedian]:
    """Count and median of ``metric`` per combination of ``by`` and ``basis_sql`` (NULL is a
    level: imported trials may lack a dataset or a config_id)."""
    finite_check(con, sel, [metric])
    m = f"CAST({quote(metric)} AS DOUBLE)"
    keys = [quote(c) for c in by]
    cols = ", ".join([*keys, f"{basis_sql} AS __basis"])
    where = sel.where_and(f"{quote(metric)} IS NOT NULL")
    # the median holds every value of a configuration: in a store of more than
    # query.HELD_MAX trials, counts first, then the medians a batch of configurations at a time
    batched = trial_rows(con) > query.HELD_MAX
    med = "NULL" if batched else f"median({m})"
    rows = execute(
        con,
        f"SELECT {cols}, count(*), {med}, count(*) FILTER (WHERE {one_thread_sql}) "
        f"FROM {VIEW}{where} GROUP BY ALL ORDER BY ALL",
        sel.params,
    )
    if batched:
        rows = _batched_medians(con, sel, [*keys, basis_sql], m, where, rows)
    g = len(by)
    return [
        ConfigMedian(
            tuple(r[:g]),
            None if r[g] is None else float(r[g]),
            int(r[g + 1]),
            float(r[g + 2]),
            int(r[g + 3]),
        )  # fmt: skip
        for r in rows
    ]


def _batched_medians(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    keys: Sequence[str],
    m: str,
    where: str,
    rows: list[tuple],
) -> list[tuple]:
    """``rows`` (keys, count, NULL, one-thread count) with the median of ``m`` filled, one scan
    per batch of configurations of at most :data:`analysis.query.HELD_MAX` trials
    (:func:`analysis.query.key_batches`), joined to its keys."""
    g = len(keys)
    counts = {i: int(r[g]) for i, r in enumerate(rows)}
    batches = query.key_batches(counts, counts, query.HELD_MAX)
    out = [list(r) for r in rows]
    cols = ", ".join(f"{k} AS __k{j}" for j, k in enumerate(keys))
    names = ", ".join([*(f"__p{j}" for j in range(g)), "__i"])
    on = " AND ".join(f"__k{j} IS NOT DISTINCT FROM __p{j}" for j in range(g))
    for batch in batches:
        values = ", ".join("(" + ", ".join(["?"] * g + [str(i)]) + ")" for i in batch)
        args = [v for i in batch for v in rows[i][:g]]
        sql = (
            f"SELECT __i, median(__m) FROM (SELECT {cols}, {m} AS __m FROM {VIEW}{where}) "
            f"JOIN (VALUES {values}) AS p({names}) ON {on} GROUP BY __i"
        )
        for i, median in execute(con, sql, [*sel.params, *args]):
            out[int(i)][g + 1] = median
    return [tuple(r) for r in out]
