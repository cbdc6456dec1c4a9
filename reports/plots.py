"""Figures for the report: data gathered from the database and the analysis package, drawn by
:mod:`reports.figures`. A figure whose data are absent (or that cannot be drawn) becomes a
one-line note instead; nothing here raises for missing data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from analysis import AnalysisError, Filter, box_stats
from reports.blocks import Figure, slug

#: Below this many trials a group is drawn as dots (every trial), as reports.figures does.
DOT_BELOW = 10


def draw(
    fig_id: str, caption: str, make: Callable[[], Any], notes: list[str], what: str
) -> Figure | None:
    """Call ``make()`` (a figure function returning ``RenderedFigure``); a ``ValueError`` from it
    (nothing finite to draw, ...) or an :class:`AnalysisError` becomes a note about ``what``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rendered = make()
    except AnalysisError as exc:
        notes.append(f"{what}: not drawn ({exc})")
        return None
    except (ValueError, OverflowError) as exc:
        notes.append(f"{what}: not drawn ({exc})")
        return None
    dropped = int(getattr(rendered, "dropped", 0) or 0)
    if dropped:
        caption += f" {dropped} non-finite value(s) not drawn."
    note = str(getattr(rendered, "note", "") or "")
    if note:
        caption += f" {note}"
    return Figure(id=slug(fig_id), caption=caption, svg=rendered.svg, pdf=rendered.pdf)


def _matches(values: dict[str, Any], where: Sequence[Filter]) -> bool:
    """Equality filters (``=``/``!=``, NULL included) matched on level text, as the analysis
    package spells levels (``2`` for 2.0)."""
    from analysis.data import format_level

    for f in where:
        value = values[f.column]
        if f.value is None:
            hit = value is None
        else:
            hit = value is not None and format_level(value) == format_level(_num(f.value))
        if hit != (f.op == "="):
            return False
    return True


def _num(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def groups_for(
    con: Any,
    *,
    by: Sequence[str],
    metric: str,
    where: Sequence[Filter],
    boxes: Sequence[Any] | None = None,
) -> list[Any]:
    """Groups for :func:`reports.figures.distribution`, in ``box_stats`` order: ``BoxStats`` for
    groups of 10 or more trials (computed in DuckDB), the raw values (``Trials``) for smaller
    groups (fetched as one short list per group). Filters must be ``=`` or ``!=``. ``boxes``:
    the ``box_stats`` boxes of ``by`` and ``where`` when the caller has them already."""
    from analysis.data import format_level, quote
    from reports.figures import Trials

    if boxes is None:
        boxes = box_stats(con, by=by, metric=metric, where=where).boxes
    if all(b.n >= DOT_BELOW for b in boxes):
        return list(boxes)
    from analysis.data import view_columns, where_clause

    keys = list(dict.fromkeys([*by, *(f.column for f in where)]))
    cols = ", ".join(quote(k) for k in keys)
    x = f"CAST({quote(metric)} AS DOUBLE)"
    # only the groups of fewer than DOT_BELOW trials are fetched, one short list each: the
    # counts first (no list of every trial), then the values of those groups alone
    sql, params = where_clause(view_columns(con), where)
    sql += f"{' AND' if sql else ' WHERE'} {x} IS NOT NULL"
    if keys:
        b_cols = ", ".join(f"b.{quote(k)}" for k in keys)
        match = " AND ".join(f"b.{quote(k)} IS NOT DISTINCT FROM s.{quote(k)}" for k in keys)
        query = (
            f"WITH b AS (SELECT {cols}, {x} AS x FROM observations{sql}), "
            f"s AS (SELECT {cols} FROM b GROUP BY ALL HAVING count(*) < {DOT_BELOW}) "
            f"SELECT {b_cols}, list(b.x) FROM b SEMI JOIN s ON {match} GROUP BY ALL"
        )
    else:
        query = f"SELECT list({x}) FROM observations{sql} HAVING count(*) < {DOT_BELOW}"
    rows = con.execute(query, params).fetchall()
    text_cols = {
        r[0] for r in con.execute("DESCRIBE observations").fetchall() if str(r[1]) == "VARCHAR"
    }
    values: dict[str, list[float]] = {}
    for row in rows:
        rec = dict(zip(keys, row[:-1], strict=True))
        if row[-1] is None or not _matches(rec, where):
            continue
        parts = [
            format_level(rec[b])
            if b in text_cols and rec[b] is not None
            else f"{b}={format_level(rec[b])}"
            for b in by
        ]
        values.setdefault(" / ".join(parts) if by else "all trials", []).extend(row[-1])
    return [
        Trials(label=b.label, values=values[b.label])
        if b.n < DOT_BELOW and b.label in values
        else b
        for b in boxes
    ]
