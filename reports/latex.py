"""LaTeX rendering: an escaping Jinja environment and a sandboxed ``latexmk`` compile.

Every value a template places is escaped for LaTeX by the environment's ``finalize`` hook unless it
is wrapped in :class:`Trusted` (LaTeX we wrote ourselves). Escaping maps one character at a time,
so already-produced escapes are never escaped again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from analysis.latex import LATEX_ESCAPES, latex_escape
from reports.errors import ReportError

__all__ = [
    "LATEX_ESCAPES",
    "TableLayout",
    "Trusted",
    "compile_pdf",
    "escape_latex",
    "latex_environment",
    "table_layout",
    "table_parts",
]

TEX_INSTALL_HINT = (
    "install TeX Live, e.g. `apt-get install latexmk texlive-latex-recommended "
    "texlive-fonts-recommended lmodern`"
)
COMPILE_TIMEOUT_S = 180


class Trusted(str):
    """A string that is already valid LaTeX and is placed verbatim (never built from data)."""

    __slots__ = ()


def escape_latex(value: Any) -> str:
    """Return ``value`` as LaTeX text that typesets literally; :class:`Trusted` passes through."""
    if isinstance(value, Trusted):
        return value
    if value is None:
        return ""
    return latex_escape(str(value))


def latex_environment() -> jinja2.Environment:
    """Jinja environment for ``*.tex.j2``: ``\\BLOCK{}``, ``\\VAR{}``, ``\\#{}``; escapes values."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("templates", ""),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        line_statement_prefix=None,
        line_comment_prefix=None,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        finalize=escape_latex,
    )
    # Only for LaTeX the report's code wrote (column specs, math headers, file names).
    env.filters["trusted"] = Trusted
    env.filters["layout"] = table_layout
    env.filters["parts"] = table_parts
    env.filters["cmidrules"] = cmidrules
    env.filters["commands"] = commands
    return env


def commands(text: str) -> Trusted:
    """``text`` escaped, each marked command (``reports.blocks.COMMAND_MARK``) in
    ``\\texttt``, where ``--`` stays two hyphens (:func:`escape_latex` splits them): an option
    never breaks, a path may break after a ``/``, the command at its spaces."""
    from reports.blocks import render_commands

    def word(token: str) -> str:
        if token.isspace():
            return " "
        if token.startswith("-"):
            return r"\mbox{" + escape_latex(token) + "}"
        return escape_latex(token).replace("/", r"/\allowbreak{}")

    return Trusted(
        render_commands(
            text, plain=escape_latex, word=word, command=lambda inner: r"\texttt{" + inner + "}"
        )
    )


#: Text width of the report's page (A4 landscape, 1.6 cm margins), in cm.
TEXT_WIDTH_CM = 26.4
#: Average glyph width (cm) of Latin Modern at each size, and the column padding (cm).
_CHAR_CM = {"small": 0.17, "footnotesize": 0.155, "scriptsize": 0.13}
_PAD_CM = 0.3
_MIN_WRAP_CM = 1.9
#: A table is split into parts when its narrowest setting is within this much of the text width
#: (the widths are estimates from average glyph widths).
_SPLIT_SLACK_CM = 2.0
_MAX_WRAP_CM = 7.0


@dataclass(frozen=True)
class TableLayout:
    """How a table is set: its longtable column spec and font size (both trusted LaTeX)."""

    spec: Trusted
    size: Trusted


def table_layout(table: Any) -> TableLayout:
    """A longtable spec that fits the text width: numbers right-aligned, short text ``l``,
    long text in ``p{}`` columns sharing the width the others leave; a smaller font for wide
    tables."""
    cols = table.columns
    longest = [
        max([len(c.label), *(len(row[i]) for row in table.rows)]) for i, c in enumerate(cols)
    ]
    _widen_for_groups(longest, table.groups)
    sizes = ("small", "footnotesize", "scriptsize")
    start = 0 if len(cols) <= 9 else 1
    for size in sizes[start:]:
        char = _CHAR_CM[size]
        wrap = [i for i, c in enumerate(cols) if c.wrap and longest[i] > 14]
        fixed = sum(longest[i] * char + _PAD_CM for i in range(len(cols)) if i not in wrap)
        room = TEXT_WIDTH_CM - fixed - _PAD_CM * len(wrap)
        if not wrap:
            if fixed <= TEXT_WIDTH_CM or size == sizes[-1]:
                break
            continue
        share = room / len(wrap)
        widths = _wrap_widths(table, wrap, longest, char, share)
        if (share >= _MIN_WRAP_CM and sum(widths.values()) <= room) or size == sizes[-1]:
            break
    if not wrap:
        widths = {}
    parts = []
    for i, c in enumerate(cols):
        if i in widths:
            parts.append(rf">{{\raggedright\arraybackslash}}p{{{widths[i]:.2f}cm}}")
        else:
            parts.append("r" if c.num else "l")
    return TableLayout(Trusted("@{}" + "".join(parts) + "@{}"), Trusted(size))


def _wrap_widths(
    table: Any, wrap: Sequence[int], longest: Sequence[int], char: float, share: float
) -> dict[int, float]:
    """Widths (cm) of the wrapped columns: ``share`` each, or less for short text, never below
    the narrowest wrap width nor its longest word (which cannot break)."""
    return {
        i: max(
            _MIN_WRAP_CM,
            min(_MAX_WRAP_CM, _word_cm(table, i, char)),
            min(_MAX_WRAP_CM, share, longest[i] * char + 0.1),
        )
        for i in wrap
    }


def _word_cm(table: Any, i: int, char: float) -> float:
    """Width of the longest word (what LaTeX cannot break) in column ``i``, with room for
    glyphs wider than the average (``_``, ``m``, capitals)."""
    texts = [table.columns[i].label, *(row[i] for row in table.rows)]
    return max((len(w) for t in texts for w in t.split()), default=0) * char * 1.2 + 0.1


def _min_width_cm(table: Any, columns: Sequence[int]) -> float:
    """The narrowest ``columns`` of ``table`` can be set (the smallest font, long text wrapped
    as narrow as :func:`table_layout` sets it)."""
    char = _CHAR_CM["scriptsize"]
    width = 0.0
    for i in columns:
        c = table.columns[i]
        longest = max([len(c.label), *(len(row[i]) for row in table.rows)])
        if c.wrap and longest > 14:
            width += _PAD_CM + max(_MIN_WRAP_CM, min(_MAX_WRAP_CM, _word_cm(table, i, char)))
        else:
            width += _PAD_CM + longest * char
    return width


def table_parts(table: Any) -> list[Any]:
    """``table``, or when it cannot fit the page even in the smallest font, its columns cut into
    consecutive parts that do, each part repeating the ``keys`` columns that name a row and
    captioned "(part i of n)". Tables without ``keys`` or with header groups stay whole."""
    from dataclasses import replace

    n = len(table.columns)
    room = TEXT_WIDTH_CM - _SPLIT_SLACK_CM
    if not table.keys or table.groups or _min_width_cm(table, range(n)) <= room:
        return [table]
    keys = list(range(table.keys))
    parts: list[list[int]] = [[]]
    for i in range(table.keys, n):
        if parts[-1] and _min_width_cm(table, [*keys, *parts[-1], i]) > room:
            parts.append([])
        parts[-1].append(i)
    if len(parts) == 1:
        return [table]
    out = []
    for k, part in enumerate(parts, 1):
        cols = [*keys, *part]
        out.append(
            replace(
                table,
                id=table.id if k == 1 else f"{table.id}-{k}",
                caption=f"{table.caption} (part {k} of {len(parts)})",
                columns=tuple(table.columns[i] for i in cols),
                rows=tuple(tuple(row[i] for i in cols) for row in table.rows),
            )
        )
    return out


def _widen_for_groups(longest: list[int], groups: Any) -> None:
    """Make room, in ``longest`` (characters per column), for each header group's label over
    the columns it spans (``Brown–Forsythe`` over one ``p`` column sets its width), sharing
    what is missing among them."""
    start = 0
    for g in groups:
        span = range(start, start + g.span)
        start += g.span
        have = sum(longest[i] for i in span) + 2 * (g.span - 1)  # a column gap ~ 2 characters
        short = len(g.label) - have
        for k, i in enumerate(span):
            if short > 0:
                longest[i] += short // g.span + (k < short % g.span)


def cmidrules(table: Any) -> Trusted:
    """``\\cmidrule`` under each header group wider than one column or with a label."""
    rules = []
    start = 1
    for g in table.groups:
        end = start + g.span - 1
        if g.label:
            rules.append(rf"\cmidrule(lr){{{start}-{end}}}")
        start = end + 1
    return Trusted("".join(rules))


def _tex_tools() -> tuple[str, str]:
    latexmk = shutil.which("latexmk")
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        raise ReportError(f"pdflatex not found: {TEX_INSTALL_HINT}")
    if latexmk is None:
        raise ReportError(f"latexmk not found: {TEX_INSTALL_HINT}")
    return latexmk, pdflatex


def check_tex() -> None:
    """Raise :class:`ReportError` when ``latexmk`` or ``pdflatex`` is not on PATH."""
    _tex_tools()


_FILE_LINE_ERROR = re.compile(r"^\S+\.tex:\d+: ")


def _first_error(log: Path) -> str:
    try:
        lines = log.read_text(encoding="latin-1").splitlines()
    except OSError:
        return "no log written"
    for line in lines:
        if line.startswith("!") or _FILE_LINE_ERROR.match(line):
            return line.lstrip("! ").strip()
    return "unknown error"


def compile_pdf(source: str, *, files: dict[str, bytes] | None = None) -> bytes:
    """Compile LaTeX ``source`` (plus auxiliary ``files``) in a temporary folder; return the PDF.

    Shell escape is off both for latexmk and for the pdflatex it runs. On failure the folder is
    kept so that the log can be read, and the error names it.
    """
    latexmk, _ = _tex_tools()
    workdir = Path(tempfile.mkdtemp(prefix="trialkit-report-"))
    (workdir / "report.tex").write_text(source, encoding="utf-8")
    for name, data in (files or {}).items():
        (workdir / name).write_bytes(data)
    cmd = [
        latexmk,
        "-pdf",
        "-interaction=nonstopmode",
        "-halt-on-error",
        "-file-line-error",
        "-no-shell-escape",
        "-pdflatex=pdflatex -no-shell-escape -interaction=nonstopmode -halt-on-error %O %S",
        "report.tex",
    ]
    env = dict(os.environ, openin_any="p", openout_any="p", shell_escape="f")
    try:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ReportError(
            f"LaTeX did not finish within {COMPILE_TIMEOUT_S} s; see {workdir / 'report.log'}"
        ) from None
    pdf = workdir / "report.pdf"
    log = workdir / "report.log"
    if proc.returncode != 0 or not pdf.exists():
        raise ReportError(f"LaTeX failed ({_first_error(log)}); see the log at {log}")
    data = pdf.read_bytes()
    shutil.rmtree(workdir, ignore_errors=True)
    return data
