"""The cells of a two-way layout (see :mod:`analysis.twoway`): their sufficient statistics from
DuckDB, the checks that make the interaction estimable, and the notes every result carries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analysis.data import VIEW, Selection, execute, format_level, quote
from analysis.errors import AnalysisError
from analysis.smallsample import small_sample_note

if TYPE_CHECKING:
    import duckdb

#: Said in every two-way result: the ANOVA's assumptions are not tested here.
UNCHECKED_NOTE = (
    "equal variances and normal residuals not checked (the two-way ANOVA runs no assumption "
    "check); compare one factor at a time with `analyze anova --group` for Welch's ANOVA and "
    "the checks"
)


@dataclass(frozen=True)
class CellMoments:
    """Sufficient statistics of one cell (``i``, ``j`` index the sorted levels)."""

    i: int
    j: int
    level_a: str
    level_b: str
    n: int
    shift: float
    mean_dev: float
    var: float  # sample variance; NaN when n < 2


def cell_moments(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    metric: str,
    groups: tuple[str, str],
    scale: float = 1.0,
) -> list[CellMoments]:
    """Per-cell count, shift, mean and sample variance of ``x - shift`` (``x = metric / scale``,
    a power of two; shift = the cell's minimum of x), computed in DuckDB. Rows with a NULL
    metric or factor are left out; levels are numbered in sorted order, cells come sorted by
    (G, G2)."""
    m, a, b = quote(metric), quote(groups[0]), quote(groups[1])
    where_sql = sel.where_and(f"{m} IS NOT NULL", f"{a} IS NOT NULL", f"{b} IS NOT NULL")
    sql = (
        "SELECT g1, g2, dense_rank() OVER (ORDER BY g1), dense_rank() OVER (ORDER BY g2), "
        "n, shift, mean_dev, var FROM ("
        "SELECT g1, g2, count(*) AS n, any_value(shift) AS shift, avg(x - shift) AS mean_dev, "
        "var_samp(x - shift) AS var FROM ("
        "SELECT g1, g2, x, min(x) OVER (PARTITION BY g1, g2) AS shift FROM ("
        f"SELECT {a} AS g1, {b} AS g2, CAST({m} AS DOUBLE) / ? AS x FROM {VIEW}{where_sql})) "
        "GROUP BY g1, g2) ORDER BY g1, g2"
    )
    return [
        CellMoments(
            i=int(ri) - 1,
            j=int(rj) - 1,
            level_a=format_level(la),
            level_b=format_level(lb),
            n=int(n),
            shift=float(shift),
            mean_dev=float(mean_dev),
            var=math.nan if var is None else float(var),
        )
        for la, lb, ri, rj, n, shift, mean_dev, var in execute(con, sql, [scale, *sel.params])
    ]


def levels_of(cells: Sequence[CellMoments], which: str) -> list[str]:
    """Sorted level labels of factor ``a`` or ``b``."""
    index = {getattr(c, "i" if which == "a" else "j"): getattr(c, f"level_{which}") for c in cells}
    return [index[k] for k in range(len(index))]


def check_cells(
    cells: Sequence[CellMoments], *, groups: tuple[str, str], metric: str
) -> tuple[list[str], list[str]]:
    """Two or more levels per factor, every combination present, residual df > 0."""
    a, b = groups
    levels_a, levels_b = levels_of(cells, "a"), levels_of(cells, "b")
    for name, levels in ((a, levels_a), (b, levels_b)):
        if len(levels) < 2:
            raise AnalysisError(
                f"--group {name} has only one level ({levels[0]}) in the selected trials with "
                f"{metric}; pick a factor that varies, or loosen --where"
            )
    present = {(c.i, c.j) for c in cells}
    missing = [
        (la, lb)
        for i, la in enumerate(levels_a)
        for j, lb in enumerate(levels_b)
        if (i, j) not in present
    ]
    if missing:
        la, lb = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise AnalysisError(
            f"no trials with {metric} for {a}={la}, {b}={lb}{more}, so the {a}:{b} interaction "
            f"is not estimable; {_complete_hint(missing, groups, levels_a, levels_b)}"
        )
    if all(c.n < 2 for c in cells):
        raise AnalysisError(
            f"every {a} x {b} cell has a single trial with {metric}, so no residual degrees of "
            "freedom are left beside the interaction; run at least 2 trials in some cell "
            "(more repetitions)"
        )
    return levels_a, levels_b


def _complete_hint(
    missing: Sequence[tuple[str, str]],
    groups: tuple[str, str],
    levels_a: Sequence[str],
    levels_b: Sequence[str],
) -> str:
    """What makes the design complete: the ``--where`` that drops the levels of one factor
    missing somewhere (the option keeping more cells first), or one factor at a time."""
    a, b = groups
    options = []
    for name, levels, k, other in ((b, levels_b, 1, levels_a), (a, levels_a, 0, levels_b)):
        drop = sorted({m[k] for m in missing}, key=list(levels).index)
        if len(levels) - len(drop) >= 2:
            kept = (len(levels) - len(drop)) * len(other)
            options.append((kept, " ".join(f"--where {name}!={lv}" for lv in drop)))
    if not options:
        return (
            f"run {'that combination' if len(missing) == 1 else 'those combinations'}, or compare "
            f"one factor at a time (analyze anova --group {a}, then --group {b})"
        )
    options.sort(key=lambda o: -o[0])
    what = "that combination" if len(missing) == 1 else "those combinations"
    if len(missing) == 1:
        return f"run {what}, or exclude a level with {' or '.join(o[1] for o in options)}"
    return f"run {what}, or keep a complete design with {' or '.join(o[1] for o in options)}"


def cell_notes(cells: Sequence[CellMoments], groups: tuple[str, str]) -> tuple[str, ...]:
    """The small-sample note (cells below 5 trials), the cells without a spread, and the
    assumptions this ANOVA does not check."""
    a, b = groups
    notes = []
    few = small_sample_note([(f"{a}={c.level_a}, {b}={c.level_b}", c.n) for c in cells])
    if few:
        notes.append(few)
    single = [f"{a}={c.level_a}, {b}={c.level_b}" for c in cells if c.n < 2]
    if single:
        notes.append(
            f"{len(single)} cell(s) with a single trial add nothing to the residual "
            f"(no sd): {'; '.join(single[:4])}{' ...' if len(single) > 4 else ''}"
        )
    notes.append(UNCHECKED_NOTE)
    return tuple(notes)
