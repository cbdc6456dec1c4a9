"""Escaping text for LaTeX, one character at a time (an escape is never escaped again): used by
the ``--format latex`` tables of :mod:`analysis` and by the report's LaTeX environment; and
those tables (:func:`latex_table`, :func:`frame_to_latex`)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from analysis.render import fmt

#: One entry per special character; the result of a replacement is never looked at again.
LATEX_ESCAPES: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # Not special on their own, but they form ligatures or optional arguments in context:
    # ``--`` is a dash, and ``\\ [x]`` in a table row is read as ``\\[x]`` (a length).
    "-": "-{}",
    "[": "{[}",
    "]": "{]}",
    "`": r"\textasciigrave{}",
    "'": r"\textquotesingle{}",
    '"': r"\textquotedbl{}",
    # Line breaks inside a cell would end the paragraph (a blank line) or the row.
    "\n": " ",
    "\r": " ",
    "\t": " ",
}
_SPECIAL = re.compile(
    "|".join(re.escape(c) for c in LATEX_ESCAPES)
    + r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # other control characters (C0, C1): dropped
    + r"|[^\x00-\xff]"  # beyond Latin-1
)
#: Characters outside Latin-1 that T1 + utf8 inputenc typeset; anything else is shown as U+XXXX.
_UNICODE_OK = frozenset("–—‘’“”…•€")


def _replace(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in LATEX_ESCAPES:
        return LATEX_ESCAPES[char]
    if char in _UNICODE_OK:
        return char
    if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
        return ""
    # brackets escaped as in the map, so "\\[" after a row end is never read as \\[<length>]
    return f"{{[}}U+{ord(char):04X}{{]}}"


def latex_escape(text: str) -> str:
    """``text`` as LaTeX that typesets literally."""
    return _SPECIAL.sub(_replace, text)


#: Significant digits of the numbers in ``--format latex`` tables.
LATEX_DIGITS = 6


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A LaTeX ``tabular`` (booktabs rules): every header and text cell escaped, numbers with
    six significant digits (minus signs in math mode), missing values as ``--``."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "--"
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = fmt(value, LATEX_DIGITS)
            return "$-$" + text[1:] if text.startswith("-") else text
        return latex_escape(fmt(value, LATEX_DIGITS))

    align = "".join(
        "r"
        if rows
        and all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool) or r[i] is None
            for r in rows
        )
        else "l"
        for i in range(len(headers))
    )
    lines = [f"\\begin{{tabular}}{{{align}}}", "\\toprule"]
    lines.append(" & ".join(latex_escape(h) for h in headers) + r" \\")
    lines.append("\\midrule")
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


def frame_to_latex(frame: Any) -> str:
    """:func:`latex_table` of a pandas DataFrame (NaN as ``--``)."""
    rows = [
        [None if _is_missing(v) else _plain(v) for v in record]
        for record in frame.itertuples(index=False, name=None)
    ]
    return latex_table([str(c) for c in frame.columns], rows)


def _is_missing(value: Any) -> bool:
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers; other values unchanged."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    return value
