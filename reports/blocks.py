"""The report's building blocks: sections holding paragraphs, tables, figures and notes.

Python builds them with every number already formatted (:mod:`reports.format`); the HTML and
LaTeX templates only loop over them and place strings, each through its format's escaping. A
block's ``kind`` picks its partial (``partials/<kind>.html.j2`` / ``.tex.j2``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: Marks a command in a note's text (``analysis.provenance`` puts it on both sides of a resume
#: command); each format's ``commands`` filter sets the command apart (:func:`render_commands`).
#: NUL: no path holds it (a run id that does only splits the formatting; every piece is escaped).
COMMAND_MARK = "\x00"


def render_commands(
    text: str,
    *,
    plain: Callable[[str], str],
    word: Callable[[str], str],
    command: Callable[[str], str],
) -> str:
    """``text`` in a format: its plain pieces through ``plain``; each command between
    :data:`COMMAND_MARK` marks cut into its words and the runs of spaces between them (so a
    format can keep an option such as ``--resume`` from breaking at its hyphens while the
    command still wraps between words), each through ``word``, joined, then through
    ``command``. The callables escape for the format."""
    out = []
    for i, piece in enumerate(text.split(COMMAND_MARK)):
        if i % 2:
            out.append(command("".join(word(t) for t in re.split(r"( +)", piece) if t)))
        elif piece:
            out.append(plain(piece))
    return "".join(out)


def slug(text: str) -> str:
    """An id made of ``[a-z0-9-]`` (anchors, LaTeX labels and figure file names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


@dataclass(frozen=True)
class Column:
    """One table column. ``num`` right-aligns (numbers); ``wrap`` lets long text wrap (a
    ``p{}`` column in LaTeX). ``tex`` is an optional LaTeX header we wrote ourselves (math)."""

    label: str
    num: bool = False
    wrap: bool = False
    tex: str | None = None


@dataclass(frozen=True)
class HeaderGroup:
    """A label spanning ``span`` columns in a header row above the column labels."""

    label: str
    span: int


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"

    id: str
    caption: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    groups: tuple[HeaderGroup, ...] = ()
    #: indices of rows that start a new group (a rule is drawn above them)
    breaks: tuple[int, ...] = ()
    note: str = ""
    #: leading columns that name a row: repeated in each part when LaTeX splits a table too
    #: wide for the page (0: never split)
    keys: int = 0

    def __post_init__(self) -> None:
        width = len(self.columns)
        for row in self.rows:
            if len(row) != width:
                raise ValueError(f"table {self.id}: row {row!r} has {len(row)} cells, not {width}")
        if self.groups and sum(g.span for g in self.groups) != width:
            raise ValueError(f"table {self.id}: header groups do not span {width} columns")

    @property
    def wide(self) -> bool:
        return len(self.columns) > 9

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "caption": self.caption,
            "columns": [c.label for c in self.columns],
            "rows": [list(r) for r in self.rows],
        }


@dataclass(frozen=True)
class Paragraph:
    kind: ClassVar[str] = "paragraph"

    text: str
    style: str = ""  # "" | "provenance" | "note"


@dataclass(frozen=True)
class Notes:
    """A bulleted list (things not tested, figures left out, ...)."""

    kind: ClassVar[str] = "notes"

    title: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    """A rendered figure: ``svg`` is inlined in HTML, ``pdf`` written as ``<file>`` for LaTeX."""

    kind: ClassVar[str] = "figure"

    id: str
    caption: str
    svg: str
    pdf: bytes
    file: str = ""  # set by the LaTeX renderer

    @property
    def name(self) -> str:
        return f"fig-{self.id}.pdf"


Block = Table | Paragraph | Notes | Figure


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: tuple[Block, ...] = ()
    subsections: tuple[Section, ...] = ()
    appendix: bool = False

    def figures(self) -> list[Figure]:
        found = [b for b in self.blocks if isinstance(b, Figure)]
        for sub in self.subsections:
            found += sub.figures()
        return found


@dataclass
class SectionBuilder:
    """Collects blocks for one section (a small convenience for the context builders)."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)
    appendix: bool = False

    def para(self, text: str, style: str = "") -> None:
        self.blocks.append(Paragraph(text, style))

    def notes(self, title: str, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(Notes(title, tuple(items)))

    def add(self, block: Block | None) -> None:
        if block is not None:
            self.blocks.append(block)

    def build(self) -> Section:
        return Section(
            self.id, self.title, tuple(self.blocks), tuple(self.subsections), self.appendix
        )
