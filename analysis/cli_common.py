"""What every ``analyze`` command shares: the Typer app, the common options, and turning a
result into output (``--format``, ``--table``, ``--wide``) or an error into one stderr line.

Only the ``analysis/cli*.py`` modules import typer, print or exit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from analysis.errors import AnalysisError
from runner.climain import QuickHelpGroup, terminal_safe

app = typer.Typer(
    cls=QuickHelpGroup,
    help=(
        "Statistics over a trialkit results database (ANOVA, t-tests, summaries, regression, "
        "scaling)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    latex = "latex"


DbOpt = Annotated[Path, typer.Option("--db", help="Results database file.")]
MetricOpt = Annotated[str, typer.Option("--metric", help="Numeric column to analyse.")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Keep trials where COLUMN OP VALUE (OP: = != < > <= >=); repeatable.",
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
WarmupOpt = Annotated[bool, typer.Option("--include-warmup", help="Also use warm-up trials.")]
PairGroupOpt = Annotated[str, typer.Option("--group", help="Factor column holding the two levels.")]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", help="Bootstrap resamples for the intervals (0: none).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]
ConfidenceOpt = Annotated[
    float, typer.Option("--confidence", help="Confidence level of the intervals.")
]
PoolOpt = Annotated[
    str | None,
    typer.Option(
        "--pool",
        help=(
            "Pool these varying factors on purpose instead of holding them fixed (comma-"
            "separated; hostname, cpu_model, packages, 'env' or 'all' too)."
        ),
    ),
]
WideOpt = Annotated[
    bool,
    typer.Option("--wide", help="Show every table column, however wide (default: 120 columns)."),
]
TableOpt = Annotated[
    str | None,
    typer.Option(
        "--table",
        help="With --format csv or latex: print only this table of the result (default: the "
        "main table as CSV, every table as LaTeX; an unknown name lists them).",
    ),
]
DEFAULT_DB = Path("results.duckdb")

#: ``analyze --wide COMMAND`` (before the command) is the same as ``COMMAND --wide``.
_GLOBAL = {"wide": False}


@app.callback()
def callback(wide: WideOpt = False) -> None:
    """Statistics over a trialkit results database."""
    _GLOBAL["wide"] = wide


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def text_of(result: Any, *, wide: bool = False) -> str:
    """``str(result)`` for the terminal: tables within 120 columns and longer lines wrapped, or
    with ``wide`` every column and nothing wrapped."""
    from analysis.render import wide_tables, wrap_text

    wide = wide or _GLOBAL["wide"]
    with wide_tables(wide):
        text = str(result)
    return text if wide else wrap_text(text)


def emit(result: Any, fmt: Format, *, table: str | None = None, wide: bool = False) -> None:
    """Print ``result`` in ``fmt``: json is ``to_dict()``, csv the main table of ``tables()``
    (or ``--table NAME``), latex every table (or that one), table the text."""
    from analysis import tables

    if table is not None and fmt not in (Format.csv, Format.latex):
        fail(AnalysisError(f"--table {table} applies to --format csv or latex"))
    try:
        if fmt is Format.json:
            data = _jsonable(result.to_dict())
            typer.echo(json.dumps(data, indent=2, default=str, allow_nan=False))
        elif fmt is Format.csv:
            typer.echo(terminal_safe(tables.csv_text(result, table)), nl=False)
        elif fmt is Format.latex:
            if table is None:
                typer.echo(terminal_safe(tables.latex_text(result)))
            else:
                from analysis.latex import frame_to_latex

                frame = tables.pick_table(result, table).frame
                typer.echo(terminal_safe(frame_to_latex(frame)))
        else:
            typer.echo(terminal_safe(text_of(result, wide=wide)))
    except AnalysisError as exc:
        fail(exc)


def fail(exc: AnalysisError) -> NoReturn:
    message = " ".join(str(exc).split())
    typer.echo(terminal_safe(f"error: {message}"), err=True)
    raise typer.Exit(2)


def columns(value: str | None) -> list[str]:
    """``a,b`` -> ``["a", "b"]`` (blanks dropped)."""
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def _selections(where: list[str], kwargs: dict[str, Any]) -> list[list[Any]]:
    """The trials an analysis reads, as ``--where`` lists whose union they are: ``compare``'s
    two sides (a run id or its ``--base``/``--new`` items, each with ``--where``), else
    ``--where``."""
    from analysis.where import Filter

    sides = [kwargs[k] for k in ("base", "new") if k in kwargs]
    out: list[list[Any]] = []
    for side in sides:
        if isinstance(side, str) and not any(op in side for op in "=<>!"):
            side = [Filter("run_id", "=", side.strip())]
        elif isinstance(side, str):
            side = [side]
        out.append([*where, *side])
    return out or [list(where)]


def _notes(reader: Any, db: Path, where: list[str], kwargs: dict[str, Any]) -> None:
    """``note: ...`` lines on stderr for the selection's trials from unfinished runs and the
    store's unmerged journals (see :mod:`analysis.provenance`); nothing when all is well."""
    import duckdb

    from analysis.provenance import provenance

    try:
        found = provenance(
            reader.con,
            db=str(db),
            selections=_selections(where, kwargs),
            include_warmup=bool(kwargs.get("include_warmup")),
            store_notes=reader.notes,
        )
    except (AnalysisError, duckdb.Error):  # the analysis ran; a note it cannot make is no error
        return
    for line in found.lines():
        typer.echo(terminal_safe(f"note: {line}"), err=True)


def run(func: Callable[..., Any], db: Path, *, where: list[str] | None, **kwargs: Any) -> Any:
    """``func(db, where=..., **kwargs)`` with the CLI's optional --where list, on one
    read-only open of ``db``; then a ``note:`` line on stderr for the selected trials that
    come from runs that did not finish, and for dead runners' unmerged journals. An
    :class:`AnalysisError` becomes a one-line ``error: ...`` on stderr and exit code 2."""
    from analysis.provenance import open_reader

    try:
        with open_reader(db) as reader:
            result = func(reader.con, where=where or (), **kwargs)
            _notes(reader, db, list(where or ()), kwargs)
            return result
    except AnalysisError as exc:
        fail(exc)
    except OverflowError:  # a safety net: the analyses refuse what they know overflows
        fail(
            AnalysisError(
                "a sum of squares overflows a double (values near 1e154 or beyond); rescale "
                "the metric or exclude the extreme trials with --where"
            )
        )


def numbers(value: str | None, option: str) -> list[float]:
    """``4,8,16`` -> ``[4.0, 8.0, 16.0]``; anything else is a one-line error."""
    try:
        return [float(v) for v in columns(value)]
    except ValueError:
        fail(AnalysisError(f"{option} {value!r} is not a comma-separated list of numbers"))


def fraction(value: str, option: str) -> float:
    """``5%`` -> 0.05; ``0.05`` -> 0.05."""
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        fail(AnalysisError(f"{option} {value!r} is not a fraction; write e.g. 5% or 0.05"))
