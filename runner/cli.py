"""`runner`: run trials into the results database, import measurements, list what is supported.

Only this module imports typer, prints, or exits. Library errors (RunnerError) become one line on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from runner.errors import RunnerError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run repeated trials of ML workloads on real engines into a DuckDB results file.",
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Import measurements made elsewhere."
)
list_app = typer.Typer(add_completion=False, no_args_is_help=True, help="List what is supported.")
app.add_typer(import_app, name="import")
app.add_typer(list_app, name="list")

DbOption = Annotated[
    Path, typer.Option("--db", help="Results database (DuckDB file); created if missing.")
]


@app.callback()
def _root() -> None:
    """Run repeated trials of ML workloads on real engines into a DuckDB results file."""


@import_app.callback()
def _import_root() -> None:
    """Import measurements made elsewhere."""


@list_app.callback()
def _list_root() -> None:
    """List what is supported."""


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _split_csv(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated and comma-separated option values as one tuple; None when not given."""
    out = tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())
    return out or None


def _parse_workers(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        parsed = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise RunnerError(
            f"--workers takes comma-separated integers such as 1,2; got {text!r}"
        ) from None
    if not parsed:
        raise RunnerError("--workers is empty; give worker counts such as 1,2")
    return parsed


@app.command()
def trials(
    n: Annotated[int | None, typer.Option("--n", help="Measured trials per configuration.")] = None,
    experiment: Annotated[
        str,
        typer.Option(
            "--experiment", "-e", help="Experiment name (paper002, or just 002) or TOML path."
        ),
    ] = "default",
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Run the experiment's [quick] variant (fewer trials, smaller grid)."
        ),
    ] = False,
    warmup: Annotated[
        int | None, typer.Option(help="Warm-up trials per configuration (stored, flagged).")
    ] = None,
    engine: Annotated[
        list[str] | None, typer.Option(help="Only these engines (repeat or comma-separate).")
    ] = None,
    workload: Annotated[
        list[str] | None, typer.Option(help="Only these workloads (repeat or comma-separate).")
    ] = None,
    workers: Annotated[
        str | None, typer.Option(help="Worker counts for distributed engines, e.g. 1,2.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Base random seed.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per trial; a slower trial is stopped.")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="Datasets instead of the spec's (repeat or comma-separate)."),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Folder of MNIST-format IDX files (plain or .gz).")
    ] = None,
    spark_master: Annotated[
        str | None, typer.Option(help="Run spark configurations on this existing master URL.")
    ] = None,
    spark_mode: Annotated[
        str | None,
        typer.Option(
            help="How spark configurations run: local (local[N]) or standalone (the runner "
            "starts a Spark standalone cluster on 127.0.0.1); overrides the spec's spark_mode."
        ),
    ] = None,
    dask_scheduler: Annotated[
        str | None, typer.Option(help="Run dask configurations on this existing scheduler.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Run ray configurations on this existing cluster.")
    ] = None,
    db: DbOption = Path("results.duckdb"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the experiment's configurations, --n trials each, appending every trial to --db."""
    from runner.trials import TrialOptions, run_experiment

    try:
        options = TrialOptions(
            experiment=experiment,
            n=n,
            warmup=warmup,
            engines=_split_csv(engine),
            workloads=_split_csv(workload),
            workers=_parse_workers(workers),
            seed=seed,
            timeout=timeout,
            datasets=_split_csv(dataset),
            data_dir=data_dir,
            addresses=tuple(
                (name, address)
                for name, address in (
                    ("spark", spark_master),
                    ("dask", dask_scheduler),
                    ("ray", ray_address),
                )
                if address
            ),
            spark_mode=spark_mode,
            quick=quick,
        )
        result = run_experiment(options, db=db, argv=sys.argv, progress=not quiet)
    except RunnerError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(result.to_dict(), indent=2) if json_out else str(result))
    if result.n_bad:
        raise typer.Exit(1)


@import_app.command("csv")
def import_csv_cmd(
    file: Annotated[Path, typer.Argument(help="CSV file, one row per trial.")],
    experiment: Annotated[
        str | None, typer.Option(help="Experiment name for the imported trials.")
    ] = None,
    db: DbOption = Path("results.duckdb"),
) -> None:
    """Import a CSV: each row becomes an ok trial; numeric columns become metrics."""
    from runner.importer import import_csv

    try:
        result = import_csv(file, db=db, experiment=experiment, argv=sys.argv)
    except RunnerError as exc:
        _fail(exc)
        return
    typer.echo(str(result))


@import_app.command("prices")
def import_prices_cmd(
    file: Annotated[
        Path, typer.Argument(help="CSV: name, usd_per_hour, and optionally vcpu, memory_gb.")
    ],
    db: DbOption = Path("results.duckdb"),
) -> None:
    """Import machine prices ($/hour) into the prices table, for `analyze cost`."""
    from runner.importer import import_prices

    try:
        result = import_prices(file, db=db)
    except RunnerError as exc:
        _fail(exc)
        return
    typer.echo(str(result))


@import_app.command("published")
def import_published_cmd(
    paper: Annotated[str, typer.Option(help="Paper key (000 ... 004) or all.")] = "all",
    db: DbOption = Path("results.duckdb"),
) -> None:
    """Import the papers' published tables: one run per paper, source published:KEY."""
    from runner.published import import_published

    try:
        result = import_published(db, paper, argv=sys.argv)
    except RunnerError as exc:
        _fail(exc)
        return
    typer.echo(str(result))


@list_app.command("engines")
def list_engines() -> None:
    """Engine x workload support matrix, and whether each engine is installed."""
    from runner.engines import support_matrix

    typer.echo(support_matrix())


@list_app.command("datasets")
def list_datasets() -> None:
    """Datasets the runner can read, and where from."""
    from runner.datasets import DATASETS

    for name, description in DATASETS.items():
        typer.echo(f"{name}\t{description}")


@list_app.command("experiments")
def list_experiments(
    json_out: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """Experiment specs shipped with trialkit: expected minutes (full, --quick) and what each is."""
    from runner.spec import builtin_experiments, experiment_info

    try:
        infos = [experiment_info(str(path)) for path in builtin_experiments().values()]
    except RunnerError as exc:
        _fail(exc)
        return
    if json_out:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return

    def minutes(value: float | None) -> str:
        return "-" if value is None else f"{value:g} min"

    rows = [("experiment", "full", "quick", "description")] + [
        (
            i.name,
            minutes(i.expected_minutes.get("full")),
            minutes(i.expected_minutes.get("quick")) if i.has_quick else "none",
            i.summary,
        )
        for i in infos
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    for row in rows:
        typer.echo(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")


def main() -> None:
    from runner.climain import run_app

    run_app(app)
