"""Tukey box-plot statistics per configuration, computed in DuckDB (as matplotlib's
``cbook.boxplot_stats`` with ``whis=1.5``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import (
    VIEW,
    Database,
    Filter,
    check_distinct,
    connect,
    execute,
    finite_check,
    format_level,
    quote,
    render_table,
    select,
)
from analysis.tables import Table

if TYPE_CHECKING:
    import pandas as pd

#: Tukey's fences: values beyond q1 - 1.5 IQR or q3 + 1.5 IQR are counted (never dropped).
TUKEY_K = 1.5
#: Columns of :meth:`BoxStatsResult.tables`' ``boxes`` table.
BOX_COLUMNS = ("label", "n", "whislo", "q1", "median", "q3", "whishi", "n_fliers")


@dataclass(frozen=True)
class BoxStats:
    """Tukey box: quartiles (linear interpolation), whiskers at the most extreme data within
    1.5 IQR of the quartiles, and the points beyond them."""

    label: str
    n: int
    q1: float
    median: float
    q3: float
    whislo: float
    whishi: float
    fliers: tuple[float, ...]


@dataclass(frozen=True)
class BoxStatsResult:
    metric: str
    by: tuple[str, ...]
    boxes: tuple[BoxStats, ...]

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "by": list(self.by),
            "boxes": [{**asdict(b), "fliers": list(b.fliers)} for b in self.boxes],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per box; ``fliers`` holds a list."""
        import pandas as pd

        return pd.DataFrame(
            [{**asdict(b), "fliers": list(b.fliers)} for b in self.boxes],
            columns=["label", "n", "q1", "median", "q3", "whislo", "whishi", "fliers"],
        )

    def tables(self) -> list[Table]:
        """``boxes``: one row per box (:data:`BOX_COLUMNS`, the text's table, ``n_fliers``
        counting the points beyond the whiskers); ``fliers``: one row per such point
        (``label``, ``value``)."""
        import pandas as pd

        boxes = pd.DataFrame(
            [
                (b.label, b.n, b.whislo, b.q1, b.median, b.q3, b.whishi, len(b.fliers))
                for b in self.boxes
            ],
            columns=list(BOX_COLUMNS),
        )
        fliers = pd.DataFrame(
            [(b.label, v) for b in self.boxes for v in b.fliers], columns=["label", "value"]
        )
        return [
            Table("boxes", boxes, f"Tukey box statistics of {self.metric}"),
            Table("fliers", fliers, f"{self.metric} beyond the whiskers"),
        ]

    def __str__(self) -> str:
        return f"Box statistics of {self.metric}\n" + render_table(
            ["box", "n", "whislo", "q1", "median", "q3", "whishi", "fliers"],
            [
                (b.label, b.n, b.whislo, b.q1, b.median, b.q3, b.whishi, len(b.fliers))
                for b in self.boxes
            ],
        )


def _label(by: Sequence[str], values: Sequence[Any], columns: dict[str, str]) -> str:
    if not by:
        return "all trials"
    parts = []
    for name, value in zip(by, values, strict=True):
        text = format_level(value)
        plain = columns[name].upper() == "VARCHAR" and value is not None
        parts.append(text if plain else f"{name}={text}")
    return " / ".join(parts)


def box_stats(
    db: Database,
    *,
    by: Sequence[str] = ("engine", "workload", "workers"),
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> BoxStatsResult:
    """Tukey box-plot statistics of ``metric`` per combination of ``by`` (as matplotlib's
    ``cbook.boxplot_stats`` with ``whis=1.5``), computed in DuckDB."""
    by = check_distinct(by, "--by")
    with connect(db) as con:
        sel = select(
            con,
            metric=metric,
            group=by,
            group_option="--by",
            where=where,
            include_warmup=include_warmup,
        )
        finite_check(con, sel, [metric])
        cols = [quote(b) for b in by]
        m = quote(metric)
        base_where = sel.where_and(f"{m} IS NOT NULL")
        prefix = "".join(f"{c}, " for c in cols)
        group_by = f" GROUP BY {', '.join(cols)}" if by else ""
        q_cols = ", ".join(f"q.{c}" for c in cols)
        join = " AND ".join(f"b.{c} IS NOT DISTINCT FROM q.{c}" for c in cols) or "true"
        order = (" ORDER BY " + ", ".join(f"q.{c} NULLS LAST" for c in cols)) if by else ""
        sql = f"""
            WITH b AS (SELECT {prefix}CAST({m} AS DOUBLE) AS x FROM {VIEW}{base_where}),
            q AS (
                SELECT {prefix}count(*) AS n, quantile_cont(x, 0.25) AS q1,
                       quantile_cont(x, 0.5) AS med, quantile_cont(x, 0.75) AS q3
                FROM b{group_by}
            ),
            f AS (SELECT *, q1 - {TUKEY_K!r} * (q3 - q1) AS lo, q3 + {TUKEY_K!r} * (q3 - q1) AS hi
                  FROM q)
            SELECT {q_cols + ", " if by else ""}q.n, q.q1, q.med, q.q3,
                   min(b.x) FILTER (WHERE b.x >= q.lo), max(b.x) FILTER (WHERE b.x <= q.hi),
                   list(b.x ORDER BY b.x) FILTER (WHERE b.x < q.lo OR b.x > q.hi)
            FROM f AS q JOIN b ON {join}
            GROUP BY ALL{order}
        """
        raw = execute(con, sql, sel.params)
    boxes = []
    for rec in raw:
        values, (n, q1, med, q3, lo, hi, fliers) = rec[: len(by)], rec[len(by) :]
        q1, q3 = float(q1), float(q3)
        whislo = q1 if lo is None or lo > q1 else float(lo)
        whishi = q3 if hi is None or hi < q3 else float(hi)
        boxes.append(
            BoxStats(
                label=_label(by, values, sel.columns),
                n=int(n),
                q1=q1,
                median=float(med),
                q3=q3,
                whislo=whislo,
                whishi=whishi,
                fliers=tuple(float(v) for v in fliers or ()),
            )
        )
    return BoxStatsResult(metric=metric, by=by, boxes=tuple(boxes))
