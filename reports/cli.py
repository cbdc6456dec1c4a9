"""``report``: build the HTML / LaTeX / PDF report from a results database."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from reports.errors import ReportError
from runner.climain import QuickHelpGroup, terminal_safe

app = typer.Typer(
    cls=QuickHelpGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False
)


class Format(StrEnum):
    html = "html"
    tex = "tex"
    pdf = "pdf"


@app.callback()
def callback() -> None:
    """Render the trials in a results database as a report (HTML, LaTeX or PDF)."""


def _runs_text(run_ids: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(run_ids[:limit])
    more = len(run_ids) - limit
    return f"{shown} and {more} more" if more > 0 else shown


@app.command()
def build(
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.pdf,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file [default: report.<format>].")
    ] = None,
    db: Annotated[Path, typer.Option("--db", help="Results database.")] = Path("results.duckdb"),
    paper: Annotated[
        list[str] | None,
        typer.Option(
            "--paper",
            help="Paper sections instead of the general report: 000..004 or all (repeatable).",
        ),
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            help="Compare only this factor's levels, e.g. engine=spark,ray (repeatable).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Build the report: summary, the comparisons the data support, distributions and
    provenance; or, with --paper, each paper's tables published beside ours, its claims'
    verdicts and its figures."""
    from analysis import AnalysisError
    from reports.build import build_report

    try:
        result = build_report(
            db, fmt=fmt.value, out=out, paper=paper or None, compare=tuple(compare or ())
        )
    except (ReportError, AnalysisError) as exc:
        typer.echo(terminal_safe(f"error: {exc}"), err=True)
        raise typer.Exit(2) from None
    if not quiet:
        try:
            shown = result.path.relative_to(Path.cwd())
        except ValueError:
            shown = result.path
        typer.echo(f"wrote {shown} ({result.n_trials} trials, runs {_runs_text(result.run_ids)})")
        for warning in result.warnings:
            typer.echo(terminal_safe(f"note: {warning}"), err=True)


def main() -> None:
    from runner.climain import run_app

    run_app(app)


if __name__ == "__main__":
    main()
