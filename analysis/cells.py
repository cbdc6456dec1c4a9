"""Trial counts per configuration and run: what :mod:`analysis.strata` decides a plan from, and
the run environments (``runs.env``) that make trials incompatible."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
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

    def index(self, name: str) -> int:
        return self.columns.index(name)


def load_cells(
    con: duckdb.DuckDBPyConnection,
    sel: Selection,
    *,
    columns: Sequence[str],
    required: Sequence[str],
) -> Cells:
    """One GROUP BY over the selection (trials with a value in every ``required`` column)."""
    cols = tuple(dict.fromkeys(columns))
    aliases = [f"{quote(c)} AS c{i}" for i, c in enumerate(cols)]
    run = "run_id" if "run_id" in sel.columns else "NULL"
    where = sel.where_and(*(f"{quote(c)} IS NOT NULL" for c in dict.fromkeys(required)))
    sql = (
        f"SELECT {''.join(a + ', ' for a in aliases)}{run} AS __run, count(*) "
        f"FROM {VIEW}{where} GROUP BY ALL"
    )
    raw = execute(con, sql, sel.params)
    rows = tuple((tuple(r[: len(cols)]), r[len(cols)], int(r[-1])) for r in raw)
    runs = sorted({r[1] for r in rows if r[1] is not None})
    env: dict[str, dict[str, Any]] = {}
    if runs:
        for run_id, text in con.execute(
            "SELECT run_id, env FROM runs WHERE list_contains(?, run_id)", [runs]
        ).fetchall():
            env[str(run_id)] = env_fields(text)
    return Cells(cols, rows, env)


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
