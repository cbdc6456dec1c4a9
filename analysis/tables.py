"""Results as tables: the one protocol ``--format csv/latex`` reads.

Every result object has ``tables() -> list[Table]``, main table first, each table carrying every
statistic its text output shows. The CLI prints the main table as CSV (``--table NAME`` picks
another) and every table as LaTeX, so no command needs a special case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from analysis.errors import AnalysisError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Table:
    """One named table of a result: ``name`` is a short key (``groups``, ``tests``, ``pairs``),
    ``caption`` a sentence for LaTeX."""

    name: str
    frame: pd.DataFrame
    caption: str = ""


@runtime_checkable
class HasTables(Protocol):
    def tables(self) -> list[Table]: ...


def result_tables(result: object) -> list[Table]:
    """``result.tables()``; a result without it (none should lack it) gives its ``to_frame()``."""
    if isinstance(result, HasTables):
        tables = result.tables()
        if not tables:
            raise AnalysisError("this result has no table to print; use --format json")
        return tables
    return [Table("main", result.to_frame())]  # type: ignore[attr-defined]


def pick_table(result: object, name: str | None = None) -> Table:
    """The main table, or the one called ``name``; an unknown name is a one-line error."""
    tables = result_tables(result)
    if name is None:
        return tables[0]
    for table in tables:
        if table.name == name:
            return table
    names = ", ".join(t.name for t in tables)
    raise AnalysisError(f"--table {name!r} is not a table of this result; give one of {names}")


#: A text cell starting with one of these is a formula to a spreadsheet (``=HYPERLINK(...)``,
#: ``@SUM``, ``+cmd|...``): CSV output prefixes such cells with ``'`` (OWASP's advice), unless the
#: whole cell is a number such as ``-1.5``.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: ``'=1+1`` for ``=1+1``; other values as
    they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def csv_text(result: object, name: str | None = None) -> str:
    """The table as CSV, text cells made :func:`spreadsheet_safe`."""
    frame = pick_table(result, name).frame
    text = frame.select_dtypes(include=["object", "string"]).columns
    if len(text):
        frame = frame.copy()
        for column in text:
            frame[column] = frame[column].map(spreadsheet_safe)
    return frame.to_csv(index=False)


def latex_text(result: object) -> str:
    """Every table as a booktabs tabular, captions as comments above each."""
    from analysis.data import frame_to_latex

    parts = []
    for table in result_tables(result):
        head = f"% {table.name}: {table.caption}" if table.caption else f"% {table.name}"
        parts.append(f"{head}\n{frame_to_latex(table.frame)}")
    return "\n\n".join(parts)
