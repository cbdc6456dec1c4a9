"""``analyze``: the command line over :mod:`analysis`. Only this module prints or exits."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
from analysis.errors import AnalysisError

app = typer.Typer(
    help="Statistics over a trialkit results database (ANOVA, t-tests, summaries).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


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


@app.callback()
def callback() -> None:
    """Statistics over a trialkit results database."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _emit(result: Any, fmt: Format) -> None:
    if fmt is Format.json:
        text = json.dumps(_jsonable(result.to_dict()), indent=2, default=str, allow_nan=False)
        typer.echo(text)
    elif fmt is Format.csv:
        typer.echo(result.to_frame().to_csv(index=False), nl=False)
    else:
        typer.echo(str(result))


def _fail(exc: AnalysisError) -> NoReturn:
    message = " ".join(str(exc).split())
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _run(func: Callable[..., Any], db: Path, *, where: list[str] | None, **kwargs: Any) -> Any:
    """``func(db, where=..., **kwargs)`` with the CLI's optional --where list; an
    :class:`AnalysisError` becomes a one-line ``error: ...`` on stderr and exit code 2."""
    try:
        return func(db, where=where or (), **kwargs)
    except AnalysisError as exc:
        _fail(exc)


@app.command()
def anova(
    group: Annotated[str, typer.Option("--group", help="Factor column whose levels to compare.")],
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    db: DbOpt = Path("results.duckdb"),
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """One-way ANOVA of --metric across the levels of --group."""
    from analysis.anova import anova as run

    result = _run(run, db, group=group, metric=metric, where=where, include_warmup=include_warmup)
    _emit(result, format)


@app.command()
def ttest(
    group: Annotated[str, typer.Option("--group", help="Factor column holding the two levels.")],
    a: Annotated[str, typer.Option("--a", help="First level (mean_diff = a - b).")],
    b: Annotated[str, typer.Option("--b", help="Second level.")],
    metric: MetricOpt = "train_s",
    student: Annotated[
        bool, typer.Option("--student", help="Assume equal variances (Student, not Welch).")
    ] = False,
    where: WhereOpt = None,
    db: DbOpt = Path("results.duckdb"),
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """Two-sample t-test of --metric between --group=A and --group=B (Welch by default)."""
    from analysis.ttest import ttest as run

    result = _run(
        run,
        db,
        group=group,
        a=a,
        b=b,
        metric=metric,
        where=where,
        student=student,
        include_warmup=include_warmup,
    )
    _emit(result, format)


@app.command()
def summary(
    by: Annotated[
        str | None,
        typer.Option(
            "--by", help="Comma-separated columns to group by.", show_default=",".join(DEFAULT_BY)
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Numeric column to describe; repeatable."),
    ] = None,
    where: WhereOpt = None,
    db: DbOpt = Path("results.duckdb"),
    format: FormatOpt = Format.table,
    include_warmup: WarmupOpt = False,
) -> None:
    """n, mean, sd, median and 95% CI per configuration, with failed/timeout counts."""
    from analysis.summary import summarize

    columns = DEFAULT_BY if by is None else [c.strip() for c in by.split(",") if c.strip()]
    result = _run(
        summarize,
        db,
        by=columns,
        metrics=metric or DEFAULT_METRICS,
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format)


def main() -> None:
    """Console-script entry point (``analyze``)."""
    try:
        app()
    except BrokenPipeError:  # `analyze ... | head`
        sys.stderr.close()


if __name__ == "__main__":
    main()
