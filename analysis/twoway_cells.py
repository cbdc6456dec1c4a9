"""The cells of a two-way layout (see :mod:`analysis.twoway`): their sufficient statistics from
DuckDB, the checks that make the interaction estimable, and the notes every result carries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.data import Selection, format_level
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
    a power of two; shift = the cell's minimum of x), computed in DuckDB
    (:func:`analysis.query.moments`: plain GROUP BYs, no window). Rows with a NULL
    metric or factor are left out; levels are numbered in sorted order, cells come sorted by
    (G, G2)."""
    from analysis.query import moments

    rows = moments(con, sel, metrics=[metric], keys=list(groups), scale=scale)
    rank_a = _dense_ranks(r.key[0] for r in rows)
    rank_b = _dense_ranks(r.key[1] for r in rows)
    return [
        CellMoments(
            i=rank_a[_nan_key(r.key[0])],
            j=rank_b[_nan_key(r.key[1])],
            level_a=format_level(r.key[0]),
            level_b=format_level(r.key[1]),
            n=r.n,
            shift=r.stat.shift,
            mean_dev=r.stat.mean_dev,
            var=r.stat.var,
        )
        for r in rows
    ]


def _dense_ranks(values: Iterable[Any]) -> dict[Any, int]:
    """0-based positions of the distinct values in SQL's order (NaN after every number)."""
    distinct = {_nan_key(v) for v in values}
    ordered = sorted(distinct, key=lambda v: (v is _NAN, 0 if v is _NAN else v))
    return {v: i for i, v in enumerate(ordered)}


_NAN = object()


def _nan_key(v: Any) -> Any:
    """``v``, or one marker for every NaN (NaN != NaN would make each its own key)."""
    return _NAN if isinstance(v, float) and math.isnan(v) else v


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
