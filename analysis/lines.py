"""Text lines within the terminal's 120 columns: notes and long sentences wrapped, not cut."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from analysis.tables import Table

#: Widest line the text output of a result may have.
WIDTH = 120


def wrap(text: str, *, indent: str = "  ", width: int = WIDTH) -> str:
    """``text`` wrapped at ``width`` columns, continuation lines indented by ``indent``; each
    of its own lines is wrapped on its own (a line already short enough stays as it is)."""
    out = []
    for line in text.split("\n"):
        lead = line[: len(line) - len(line.lstrip(" "))]
        out.append(
            textwrap.fill(
                line,
                width=width,
                subsequent_indent=lead + indent,
                break_long_words=False,
                break_on_hyphens=False,
            )  # fmt: skip
            if len(line) > width
            else line
        )
    return "\n".join(out)


def note_lines(notes: Iterable[str], *, width: int = WIDTH) -> list[str]:
    """``note: …`` per note, each wrapped at ``width``."""
    return [wrap(f"note: {n}", width=width) for n in notes]


def notes_table(notes: Iterable[str], caption: str = "notes") -> Table:
    """The notes of a result as a table (one column, ``note``), for ``--format latex``."""
    import pandas as pd

    return Table("notes", pd.DataFrame({"note": list(notes)}), caption)
