"""Escaping text for LaTeX, one character at a time (an escape is never escaped again): used by
the ``--format latex`` tables of :mod:`analysis` and by the report's LaTeX environment."""

from __future__ import annotations

import re

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
