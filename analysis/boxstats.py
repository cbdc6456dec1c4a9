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
    Selection,
    check_distinct,
    connect,
    execute,
    format_level,
    nonfinite_message,
    quote,
    render_table,
    select,
)
from analysis.errors import AnalysisError
from analysis.tables import Table

if TYPE_CHECKING:
    import duckdb
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


def _literal(value: float) -> str:
    """An exact SQL DOUBLE literal."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _box_rows(
    con: duckdb.DuckDBPyConnection, sel: Selection, by: Sequence[str], metric: str
) -> list[tuple[Any, ...]]:
    """Per combination of ``by`` (sorted, NULLs last): ``(*values, n, q1, median, q3, lowest
    value >= the lower fence, highest value <= the upper fence, the values beyond the fences
    sorted)``. Pass 1, one plain GROUP BY: counts, quartiles, extremes and the non-finite
    counts (refused as :func:`analysis.data.finite_check` does); pass 2 reads again only the
    groups with values beyond a fence, joined to their small table of fences."""
    nb = len(by)
    cols = [quote(b) for b in by]
    m = quote(metric)
    x = f"CAST({m} AS DOUBLE)"
    src = f"SELECT {''.join(f'{c} AS k{i}, ' for i, c in enumerate(cols))}{x} AS x FROM {VIEW}"
    src += sel.where_and(f"{m} IS NOT NULL")
    ks = [f"k{i}" for i in range(nb)]
    kk = "".join(f"{k}, " for k in ks)
    group = f" GROUP BY {', '.join(ks)}" if by else ""
    pass1 = execute(
        con,
        f"SELECT {kk}count(*), quantile_cont(x, [0.25, 0.5, 0.75]), min(x), max(x), "
        "count(*) FILTER (WHERE isnan(x)), count(*) FILTER (WHERE x = 'inf'::DOUBLE), "
        f"count(*) FILTER (WHERE x = '-inf'::DOUBLE) FROM ({src}){group}",
        sel.params,
    )
    nan, pos, neg = (sum(int(r[nb + i]) for r in pass1) for i in (4, 5, 6))
    if nan or pos or neg:
        n = sum(int(r[nb]) for r in pass1)
        raise AnalysisError(nonfinite_message(metric, n, nan=nan, pos_inf=pos, neg_inf=neg))
    rows: dict[tuple[Any, ...], list[Any]] = {}
    fences: dict[tuple[Any, ...], tuple[float, float]] = {}
    for r in pass1:
        key = tuple(r[:nb])
        n, quart, lowest, highest = r[nb : nb + 4]
        if not n:
            continue
        q1, med, q3 = (float(q) for q in quart)
        lo, hi = q1 - TUKEY_K * (q3 - q1), q3 + TUKEY_K * (q3 - q1)
        rows[key] = [int(n), q1, med, q3, float(lowest), float(highest), []]
        if lowest < lo or highest > hi:
            fences[key] = (lo, hi)
    if fences:
        values = ", ".join(
            "(" + ", ".join(["?"] * nb + [_literal(lo), _literal(hi)]) + ")"
            for lo, hi in fences.values()
        )
        args = [v for key in fences for v in key]
        table = f"SELECT * FROM (VALUES {values}) AS t({kk}lo, hi)"
        on = " AND ".join(f"__b.{k} IS NOT DISTINCT FROM __f.{k}" for k in ks) or "true"
        keysel = "".join(f"__b.{k}, " for k in ks)
        pass2 = execute(
            con,
            f"WITH __b AS ({src}), __f AS ({table}) SELECT {keysel}"
            "min(__b.x) FILTER (WHERE __b.x >= __f.lo), max(__b.x) FILTER (WHERE __b.x <= __f.hi), "
            "list(__b.x ORDER BY __b.x) FILTER (WHERE __b.x < __f.lo OR __b.x > __f.hi) "
            f"FROM __b JOIN __f ON {on}{' GROUP BY ' + keysel.rstrip(', ') if by else ''}",
            [*sel.params, *args],
        )
        for r in pass2:
            low, high, beyond = r[nb:]
            row = rows[tuple(r[:nb])]
            row[4], row[5], row[6] = low, high, beyond
    ordered = sorted(rows, key=lambda k: tuple(_sort(v) for v in k))
    return [(*key, *rows[key]) for key in ordered]


def _sort(v: Any) -> tuple[int, Any]:
    """ORDER BY of one key column: values ascending, NULLs last."""
    if v is None:
        return (2, 0)
    if isinstance(v, float) and v != v:  # NaN after every number
        return (1, 0)
    return (0, v)


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
        raw = _box_rows(con, sel, by, metric)
    return BoxStatsResult(metric=metric, by=by, boxes=tuple(b for _, b in _boxes(raw, by, sel)))


def keyed_box_stats(
    db: Database,
    *,
    by: Sequence[str],
    metric: str = "train_s",
    where: Sequence[str | Filter] = (),
    include_warmup: bool = False,
) -> tuple[dict[str, str], list[tuple[tuple[Any, ...], BoxStats]]]:
    """:func:`box_stats` with each box's ``by`` values as stored (to split one call's boxes
    into panels and label them with :func:`box_label`), and the view's column types."""
    by = check_distinct(by, "--by")
    with connect(db) as con:
        sel = select(con, metric=metric, group=by, group_option="--by", where=where,
                     include_warmup=include_warmup)  # fmt: skip
        return sel.columns, _boxes(_box_rows(con, sel, by, metric), by, sel)


def box_label(by: Sequence[str], values: Sequence[Any], columns: dict[str, str]) -> str:
    """A box's label as :func:`box_stats` writes it (``columns``: the view's types)."""
    return _label(by, values, columns)


def _boxes(
    raw: list[tuple[Any, ...]], by: Sequence[str], sel: Selection
) -> list[tuple[tuple[Any, ...], BoxStats]]:
    boxes = []
    for rec in raw:
        values, (n, q1, med, q3, lo, hi, fliers) = rec[: len(by)], rec[len(by) :]
        q1, q3 = float(q1), float(q3)
        whislo = q1 if lo is None or lo > q1 else float(lo)
        whishi = q3 if hi is None or hi < q3 else float(hi)
        box = BoxStats(
            label=_label(by, values, sel.columns),
            n=int(n),
            q1=q1,
            median=float(med),
            q3=q3,
            whislo=whislo,
            whishi=whishi,
            fliers=tuple(float(v) for v in fliers or ()),
        )
        boxes.append((tuple(values), box))
    return boxes
