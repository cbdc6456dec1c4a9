"""Numbers and tables for the terminal (used by the results' ``__str__``): 4 significant digits
as in the report, tables that fit 120 columns, long lines wrapped. Re-exported by
:mod:`analysis.data`."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

#: Terminal tables and lines are kept within this many columns unless wide output is on.
TERMINAL_WIDTH = 120
#: Narrowest a text column is cut to when its table's key columns alone are too wide.
_MIN_CUT = 8

_WIDE: ContextVar[bool] = ContextVar("analysis_wide_tables", default=False)


@contextmanager
def wide_tables(on: bool = True) -> Iterator[None]:
    """Inside this block :func:`render_table` shows every column however wide (``--wide``)."""
    token = _WIDE.set(on)
    try:
        yield
    finally:
        _WIDE.reset(token)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for the terminal: ``digits`` significant digits (``0.01036``, ``46.52``), whole
    numbers below 1e9 in full (``12346``, not ``1.235e+04``); NaN and None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        text = f"{value:.{digits}g}"
        if "e+" in text and abs(value) < 1e9:
            return f"{value:.0f}"
        return text
    return str(value)


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "< 1e-16" if p < 1e-16 else f"{p:.4g}"


def p_text(p: float) -> str:
    """``p = 0.0123``, or ``p < 1e-16``."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _span(widths: Sequence[int]) -> int:
    return sum(widths) + 2 * max(len(widths) - 1, 0)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    key: int = 1,
    width: int = TERMINAL_WIDTH,
) -> str:
    """Plain aligned text table: text columns left, numbers right, numbers as :func:`fmt`.

    A table wider than ``width`` keeps its leftmost columns (at least the first ``key``, the
    ones that say what a row is) as far as they fit and names the others in one line under the
    table; text cells of key columns that alone are too wide are cut with ``…``. Inside
    :func:`wide_tables` every column is shown.
    """
    from runner.climain import terminal_safe

    # control characters shown as escapes before the widths are taken, so columns stay aligned
    cells = [[terminal_safe(fmt(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        bool(rows)
        and all(_is_number(row[i]) or row[i] is None for row in rows)
        and any(_is_number(row[i]) for row in rows)
        for i in range(len(headers))
    ]
    shown = list(range(len(headers)))
    names = list(headers)
    if not _WIDE.get() and _span(widths) > width:
        shown = list(range(min(max(key, 1), len(headers))))
        for i in range(len(shown), len(headers)):
            if _span([widths[j] for j in [*shown, i]]) > width:
                break
            shown.append(i)
        # key columns alone too wide: cut the widest text column until they fit
        while _span([widths[j] for j in shown]) > width:
            text_cols = [j for j in shown if not numeric[j] and widths[j] > _MIN_CUT]
            if not text_cols:
                break
            j = max(text_cols, key=lambda c: widths[c])
            widths[j] = max(_MIN_CUT, widths[j] - (_span([widths[c] for c in shown]) - width))
            cells = [[_cut(c, widths[j]) if k == j else c for k, c in enumerate(r)] for r in cells]
            names[j] = _cut(names[j], widths[j])

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            values[i].rjust(widths[i]) if numeric[i] else values[i].ljust(widths[i]) for i in shown
        ).rstrip()

    out = [line(names), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    hidden = [headers[i] for i in range(len(headers)) if i not in shown]
    if hidden:
        many = "s" if len(hidden) > 1 else ""
        note = f"({len(hidden)} column{many} not shown: {', '.join(hidden)}; --wide shows all)"
        # wrapped between column names only: a name or "--wide shows all" is never split
        keep = {name: name.replace(" ", "\xa0") for name in [*hidden, "--wide shows all"]}
        for name, glued in keep.items():
            note = note.replace(name, glued)
        wrapped = textwrap.wrap(note, width, subsequent_indent=" ", break_on_hyphens=False)
        out += [line.replace("\xa0", " ") for line in wrapped]
    return "\n".join(out)


def wrap_text(text: str, width: int = TERMINAL_WIDTH) -> str:
    """``text`` with every line longer than ``width`` wrapped at spaces (continuation lines
    indented two more than the line they continue); shorter lines, tables included, unchanged."""
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(
            line.strip(),
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
        ) or [line]
    return "\n".join(out)
