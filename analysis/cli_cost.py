"""``analyze scaling``, ``analyze cost`` and ``analyze cost-metric``: what more workers buy, and
at what price. Registered on :data:`analysis.cli_common.app` (imported by :mod:`analysis.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from analysis.cli_common import (
    DEFAULT_DB,
    BootstrapOpt,
    ConfidenceOpt,
    DbOpt,
    Format,
    FormatOpt,
    MetricOpt,
    PoolOpt,
    SeedOpt,
    TableOpt,
    WarmupOpt,
    WhereOpt,
    WideOpt,
    app,
)
from analysis.cli_common import columns as _columns
from analysis.cli_common import emit as _emit
from analysis.cli_common import fail as _fail
from analysis.cli_common import fraction as _fraction
from analysis.cli_common import numbers as _numbers
from analysis.cli_common import run as _run
from analysis.errors import AnalysisError
from analysis.options import CONFIDENCE, DEFAULT_SEED, N_BOOT


@app.command()
def scaling(
    x: Annotated[str, typer.Option("--x", help="Numeric column of worker counts.")] = "workers",
    metric: MetricOpt = "train_s",
    by: Annotated[
        str, typer.Option("--by", help="Comma-separated columns: one analysis per level.")
    ] = "engine,workload",
    predict: Annotated[
        str | None,
        typer.Option("--predict", help="Worker counts to predict, e.g. 4,8,16 (any x value)."),
    ] = None,
    min_gain: Annotated[
        str, typer.Option("--min-gain", help="Smallest worthwhile improvement per step.")
    ] = "5%",
    size: Annotated[
        str | None,
        typer.Option(
            "--size", help="Input-size column for Ernest's model.", show_default="data_fraction"
        ),
    ] = None,
    bootstrap: BootstrapOpt = N_BOOT,
    seed: SeedOpt = DEFAULT_SEED,
    confidence: ConfidenceOpt = CONFIDENCE,
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
    include_warmup: WarmupOpt = False,
) -> None:
    """Speed-up, efficiency, Karp-Flatt per --x level; Amdahl/USL/Ernest fits and predictions.
    Other factors that vary join --by (--pool to pool them)."""
    from analysis.held import scaling as run

    result = _run(
        run,
        db,
        pool=pool,
        x=x,
        metric=metric,
        by=_columns(by),
        size=size,
        predict=_numbers(predict, "--predict"),
        min_gain=_fraction(min_gain, "--min-gain"),
        n_boot=bootstrap,
        seed=seed,
        confidence_level=confidence,
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format, table=table, wide=wide)


def _prices_file(path: Path | None) -> list[Any]:
    """The rows of a prices CSV (read as `runner import prices` reads it)."""
    if path is None:
        return []
    from analysis.cost import Price
    from runner.errors import RunnerError
    from runner.importer import parse_prices

    try:
        rows = parse_prices(path)
    except RunnerError as exc:
        _fail(AnalysisError(f"--prices: {exc}"))
    return [Price(n, v, m, usd, f"file:{path.name}") for n, v, m, usd in rows]


@app.command()
def cost(
    machine: Annotated[
        str | None,
        typer.Option("--machine", help="Column naming machine types (priced from prices)."),
    ] = None,
    nodes: Annotated[
        str | None, typer.Option("--nodes", help="Column with the node count (x price).")
    ] = None,
    usd_per_core_hour: Annotated[
        float | None,
        typer.Option("--usd-per-core-hour", help="Price trials by workers x threads x this."),
    ] = None,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="Prices CSV (name, usd_per_hour, ...).")
    ] = None,
    deadline: Annotated[
        float | None, typer.Option("--deadline", help="Seconds: cheapest meeting it.")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Comma-separated columns.")] = None,
    cost_metric: Annotated[
        bool, typer.Option("--cost-metric", help="McSherry's COST instead (see cost-metric).")
    ] = False,
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
    include_warmup: WarmupOpt = False,
) -> None:
    """Median cost per configuration, the cost/time Pareto front, the cheapest under --deadline,
    per task (workload, dataset, data_fraction, epochs and source held fixed)."""
    if cost_metric:
        cost_metric_cmd(metric, where, pool, db, format, table, wide, include_warmup)
        return
    from analysis.held import cost as run

    result = _run(
        run,
        db,
        pool=pool,
        metric=metric,
        by=_columns(by) or None,
        machine=machine,
        nodes=nodes,
        usd_per_core_hour=usd_per_core_hour,
        deadline_s=deadline,
        prices=_prices_file(prices),
        where=where,
        include_warmup=include_warmup,
    )
    _emit(result, format, table=table, wide=wide)


@app.command("cost-metric")
def cost_metric_cmd(
    metric: MetricOpt = "train_s",
    where: WhereOpt = None,
    pool: PoolOpt = None,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    table: TableOpt = None,
    wide: WideOpt = False,
    include_warmup: WarmupOpt = False,
) -> None:
    """McSherry's COST: the fewest cores of each engine that beat the best single core, per
    task."""
    from analysis.held import cost_metric as run

    result = _run(run, db, metric=metric, where=where, pool=pool, include_warmup=include_warmup)
    _emit(result, format, table=table, wide=wide)
