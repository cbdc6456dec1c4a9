"""``analyze compare BASE NEW``: did a change make it faster? Registered on
:data:`analysis.cli_common.app` (imported by :mod:`analysis.cli`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from analysis.cli_common import (
    DEFAULT_DB,
    ConfidenceOpt,
    DbOpt,
    Format,
    MetricOpt,
    PoolOpt,
    TableOpt,
    WarmupOpt,
    WhereOpt,
    WideOpt,
    app,
)
from analysis.cli_common import emit as _emit
from analysis.cli_common import fail as _fail
from analysis.cli_common import fraction as _fraction
from analysis.cli_common import run as _run
from analysis.errors import AnalysisError
from analysis.options import ALPHA, CONFIDENCE
from runner.climain import terminal_safe


class CompareFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    latex = "latex"
    markdown = "markdown"


@app.command()
def compare(
    base_run: Annotated[
        str | None, typer.Argument(metavar="[BASE]", help="Run id of the base trials.")
    ] = None,
    new_run: Annotated[
        str | None, typer.Argument(metavar="[NEW]", help="Run id of the new trials.")
    ] = None,
    base: Annotated[
        list[str] | None,
        typer.Option("--base", help="Select the base trials: COLUMN OP VALUE; repeatable."),
    ] = None,
    new: Annotated[
        list[str] | None,
        typer.Option("--new", help="Select the new trials: COLUMN OP VALUE; repeatable."),
    ] = None,
    metric: MetricOpt = "train_s",
    test: Annotated[
        str, typer.Option("--test", help="mwu (Mann-Whitney U) or welch (t on log values).")
    ] = "mwu",
    threshold: Annotated[
        str, typer.Option("--threshold", help="Significant changes smaller than this are noise.")
    ] = "0%",
    fail_on_regression: Annotated[
        str | None,
        typer.Option(
            "--fail-on-regression",
            help="Exit 1 when a configuration got significantly worse by at least this, e.g. 5%.",
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = ALPHA,
    confidence: ConfidenceOpt = CONFIDENCE,
    better: Annotated[
        str | None,
        typer.Option(
            "--better", help="lower or higher (default: higher for throughput and accuracy)."
        ),
    ] = None,
    match: Annotated[
        str, typer.Option("--match", help="Match configurations by factors or config_id.")
    ] = "factors",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: Annotated[
        CompareFormat, typer.Option("--format", help="Output format.")
    ] = CompareFormat.table,
    table: TableOpt = None,
    wide: WideOpt = False,
    include_warmup: WarmupOpt = False,
) -> None:
    """Did NEW make it faster than BASE? Per configuration: medians, ratio new/base with its CI,
    p, verdict; a geometric-mean row; configurations of one side listed."""
    from analysis.compare import compare as run

    sides = []
    for name, run_id, items in (("base", base_run, base), ("new", new_run, new)):
        if (run_id is None) == (not items):
            _fail(
                AnalysisError(
                    f"give the {name} trials once: a run id ({name.upper()}) or --{name} "
                    "COLUMN=VALUE"
                )
            )
        sides.append(run_id if run_id is not None else list(items or []))
    limit = None if fail_on_regression is None else _fraction(fail_on_regression, "--fail-on")
    result = _run(
        run,
        db,
        base=sides[0],
        new=sides[1],
        metric=metric,
        test=test,
        threshold=_fraction(threshold, "--threshold"),
        alpha=alpha,
        confidence_level=confidence,
        better=better,
        match=match,
        pool=pool,
        where=where,
        include_warmup=include_warmup,
    )
    if format is CompareFormat.markdown:
        if table is not None:
            _fail(AnalysisError(f"--table {table} applies to --format csv or latex"))
        typer.echo(terminal_safe(result.to_markdown()))
    else:
        _emit(result, Format(format.value), table=table, wide=wide)
    if limit is not None:
        worse = result.regressions(limit)
        if worse:
            labels = "; ".join(r.label for r in worse)
            typer.echo(
                terminal_safe(
                    f"regression of {100 * limit:g}% or more in {len(worse)} configuration(s): "
                    f"{labels}"
                ),
                err=True,
            )
            raise typer.Exit(1)
