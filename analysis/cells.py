"""Trial counts per configuration and run: what :mod:`analysis.strata` decides a plan from, and
the run environments (``runs.env``) that make trials incompatible."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.data import VIEW, Selection, execute, format_level, quote

if TYPE_CHECKING:
    import duckdb

#: ``runs.env`` fields whose differences make trials incompatible.
ENV_FIELDS = ("hostname", "cpu_model", "packages")


@dataclass(frozen=True)
class Cells:
    """Trial counts per combination of ``columns`` and run (the selected trials)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[tuple[Any, ...], str, int], ...]  # (values, run_id, n)
    env: dict[str, dict[str, Any]]  # run_id -> {field: value}
    #: per ``finite`` column of :func:`load_cells` that is not one of ``columns``: its (min,
    #: max) in each row of ``rows`` (same order)
    extents: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    def index(self, name: str) -> int:
        return self.columns.index(name)


def load_cells(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    columns: Sequence[str],
    required: Sequence[str],
    finite: Sequence[str] = (),
) -> Cells:
    """One GROUP BY over the selection (trials with a value in every ``required`` column).

    ``finite``: numeric columns refused when NaN or infinite, by the rule of
    :func:`analysis.data.finite_check` (same rows: the selection with a value in every
    ``finite`` column), checked in the same scan: the per-cell minimum and maximum of each one
    that is not among ``columns`` (NaN and +inf surface in the maximum, -inf in the minimum;
    kept in :attr:`Cells.extents`), the values of those that are. Only when one is not finite
    does :func:`~analysis.data.finite_check` run, to raise with its counts. The other
    ``required`` columns among ``columns`` are then required here, row by row."""
    from analysis.data import finite_check

    cols = tuple(dict.fromkeys(columns))
    fin = list(dict.fromkeys(finite))
    aliases = [f"{quote(c)} AS c{i}" for i, c in enumerate(cols)]
    run = "run_id" if "run_id" in sel.columns else "NULL"
    ext = [c for c in fin if c not in cols]
    in_sql = [c for c in dict.fromkeys(required) if not (fin and c in cols and c not in fin)]
    where = sel.where_and(*(f"{quote(c)} IS NOT NULL" for c in dict.fromkeys([*fin, *in_sql])))
    aggs = "".join(
        f", min(CAST({quote(c)} AS DOUBLE)), max(CAST({quote(c)} AS DOUBLE))" for c in ext
    )
    sql = (
        f"SELECT {''.join(a + ', ' for a in aliases)}{run} AS __run, count(*){aggs} "
        f"FROM {VIEW}{where} GROUP BY ALL"
    )
    raw = execute(con, sql, sel.params)
    nc, ne = len(cols), len(ext)
    if fin:
        fi = [cols.index(c) for c in fin if c in cols]
        bad = any(
            not _finite(v) for r in raw for v in (*(r[i] for i in fi), *r[nc + 2 : nc + 2 + 2 * ne])
        )
        if bad:
            finite_check(con, sel, fin)  # raises, with the counts
        late = [cols.index(c) for c in dict.fromkeys(required) if c in cols and c not in in_sql]
        raw = [r for r in raw if all(r[i] is not None for i in late)]
    rows = tuple((tuple(r[:nc]), r[nc], int(r[nc + 1])) for r in raw)
    extents = {
        c: tuple((float(r[nc + 2 + 2 * j]), float(r[nc + 3 + 2 * j])) for r in raw)
        for j, c in enumerate(ext)
    }
    runs = sorted({r[1] for r in rows if r[1] is not None})
    env: dict[str, dict[str, Any]] = {}
    if runs:
        for run_id, text in con.execute(
            "SELECT run_id, env FROM runs WHERE list_contains(?, run_id)", [runs]
        ).fetchall():
            env[str(run_id)] = env_fields(text)
    return Cells(cols, rows, env, extents)


def _finite(v: Any) -> bool:
    """False for a NaN or infinite float (None and other types pass)."""
    return not isinstance(v, float) or math.isfinite(v)


def env_fields(text: Any) -> dict[str, Any]:
    try:
        env = json.loads(text) if isinstance(text, str) else dict(text or {})
    except (TypeError, ValueError):
        env = {}
    if not isinstance(env, dict):
        env = {}
    out: dict[str, Any] = {}
    for name in ENV_FIELDS:
        value = env.get(name)
        if name == "packages" and isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        out[name] = None if value in (None, "", "{}") else str(value)
    return out


def function_of(
    rows: Sequence[tuple[tuple[Any, ...], str, int]], keys: Sequence[int], target: int
) -> bool:
    """True when column ``target`` takes one value per combination of the ``keys`` columns."""
    seen: dict[tuple[Any, ...], Any] = {}
    for values, _, _ in rows:
        key = tuple(values[k] for k in keys)
        if seen.setdefault(key, values[target]) != values[target]:
            return False
    return True


def sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def levels_text(values: Iterable[Any], limit: int = 6) -> str:
    ordered = sorted(set(values), key=sort_key)
    text = ", ".join(format_level(v) for v in ordered[:limit])
    return text + (f", … ({len(ordered)} in all)" if len(ordered) > limit else "")


def env_text(name: str, values: Collection[str]) -> str:
    """``hostname (a, b)``; for packages only the ones that differ: ``numpy 2.1 / 2.2``."""
    if name != "packages":
        return f"{name} ({', '.join(sorted(values))})"
    dicts = [json.loads(v) for v in values]
    names = sorted({k for d in dicts for k in d})
    diff = [
        f"{p} {' / '.join(sorted({str(d.get(p, '-')) for d in dicts}))}"
        for p in names
        if len({str(d.get(p, "-")) for d in dicts}) > 1
    ]
    return f"packages ({', '.join(diff)})"
