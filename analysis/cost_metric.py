"""McSherry's COST ("Configuration that Outperforms a Single Thread", McSherry, Isard and
Murray, 2015): for each engine, the smallest number of cores whose configuration's median time
beats the best single-core configuration of the same workload and dataset, or "never" within
the measured range.

Cores as :mod:`analysis.cost_data` counts them (``cores``, else workers x threads_per_worker,
else vcpu x nodes). A workload and dataset without a single-core configuration gets rows that
say so (no baseline, and how to get one) instead of refusing the others; configurations whose
cores the data do not give are counted and said. Text and tables: :mod:`analysis.cost_text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from analysis.cost_data import config_medians, cores_sql
from analysis.data import Database, Filter, connect, format_level, no_trials_error, select

if TYPE_CHECKING:
    import pandas as pd

    from analysis.tables import Table


@dataclass(frozen=True)
class CostMetricRow:
    workload: str
    dataset: str
    engine: str
    baseline_s: float | None  # best single-core median of this workload and dataset (or none)
    baseline: str  # which configuration it is ("" without one)
    cost_cores: float | None  # None: never within the measured range, or no baseline
    median_s: float | None  # the median of the configuration that beats the baseline
    max_cores: float | None  # largest configuration of this engine measured (None: unknown)
    is_baseline: bool
    stratum: str = ""  # the other task factors held fixed (data_fraction=0.5, ...), if any
    #: configurations of this engine whose cores the data do not give (left out)
    unknown_cores: int = 0

    @property
    def verdict(self) -> str:
        if self.is_baseline:
            return "baseline"
        if self.baseline_s is None:
            return "no 1-core baseline"
        if self.max_cores is None:
            return "cores unknown"
        if self.cost_cores is None:
            return f"never (up to {format_level(self.max_cores)} cores)"
        return format_level(self.cost_cores)


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
        out["notes"] = [*self.notes, *self.row_notes()]
        return out

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{**asdict(r), "verdict": r.verdict} for r in self.rows])

    def row_notes(self) -> list[str]:
        """What the rows lack, one sentence per task (kept in the rows, so a result assembled
        from several strata still says it)."""
        from analysis.cost_text import cost_metric_notes

        return cost_metric_notes(self)

    def tables(self) -> list[Table]:
        """``cost``: one row per task and engine with the COST, its median, the baseline and the
        verdict."""
        from analysis.cost_text import cost_metric_tables

        return cost_metric_tables(self)

    def __str__(self) -> str:
        from analysis.cost_text import cost_metric_text

        return cost_metric_text(self)


def _whole(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def cost_metric(
    db: Database,
    *,
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> CostMetricResult:
    """McSherry's COST per engine, workload and dataset (configurations told apart by
    config_id and their cores)."""
    with connect(db) as con:
        sel = select(con, metric=metric, where=where, include_warmup=include_warmup)
        keys = [k for k in ("workload", "dataset", "engine", "config_id") if k in sel.columns]
        basis, _ = cores_sql(sel.columns)
        groups = config_medians(con, sel, metric=metric, by=keys, basis_sql=basis)
    if not groups:
        raise no_trials_error(sel, metric)
    by_task: dict[tuple[str, str], list[tuple[str, float | None, float]]] = {}
    for g in groups:
        raw = dict(zip(keys, g.keys, strict=True))
        task = (format_level(raw.get("workload")), format_level(raw.get("dataset")))
        by_task.setdefault(task, []).append((format_level(raw.get("engine")), g.price_basis,
                                             g.median))  # fmt: skip
    rows = []
    for (workload, dataset), configs in sorted(by_task.items()):
        known = [c for c in configs if c[1] is not None]
        single = [c for c in known if c[1] == 1]
        base = min(single, key=lambda c: c[2]) if single else None
        for engine in sorted({c[0] for c in configs}):
            mine = sorted((c for c in known if c[0] == engine), key=lambda c: (c[1], c[2]))
            unknown = sum(1 for c in configs if c[0] == engine and c[1] is None)
            beating = [c for c in mine if base is not None and c[2] < base[2]]
            first = min(beating, key=lambda c: (c[1], c[2])) if beating else None
            rows.append(
                CostMetricRow(
                    workload=workload,
                    dataset=dataset,
                    engine=engine,
                    baseline_s=None if base is None else base[2],
                    baseline="" if base is None else f"{base[0]}, 1 core",
                    cost_cores=None if first is None else _whole(first[1]),
                    median_s=None if first is None else first[2],
                    max_cores=_whole(max(c[1] for c in mine)) if mine else None,
                    is_baseline=base is not None and engine == base[0] and first is None,
                    unknown_cores=unknown,
                )
            )
    return CostMetricResult(metric, tuple(rows), sel.where_text)
