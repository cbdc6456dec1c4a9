"""`runner`: run trials into the results database, import measurements, list what is supported.

Only this module imports typer, prints, or exits. Library errors (RunnerError) become one line on
stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from runner.cli_data import data_app
from runner.climain import QuickHelpGroup, terminal_safe
from runner.config import MAX_CONFIGS
from runner.errors import RunInterrupted, RunnerError

app = typer.Typer(
    cls=QuickHelpGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Run repeated trials of ML workloads on real engines into a DuckDB results file.",
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(
    cls=QuickHelpGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Import measurements made elsewhere.",
)
list_app = typer.Typer(
    cls=QuickHelpGroup, add_completion=False, no_args_is_help=True, help="List what is supported."
)
app.add_typer(import_app, name="import")
app.add_typer(list_app, name="list")
app.add_typer(data_app, name="data")

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
    typer.echo(terminal_safe(f"error: {exc}"), err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """While a run goes on, Ctrl-C (SIGINT) and SIGTERM (what ``timeout``, systemd and Slurm
    send) ask it to stop at its next safe point: between trials, or while it waits for a
    trial, never inside a database write. It then ends as interrupted. A second signal stops at
    once."""
    from runner.workerproc import request_stop

    def handler(signum: int, frame: object) -> None:
        request_stop("SIGTERM" if signum == signal.SIGTERM else "SIGINT")

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue  # ignored by whoever started us (nohup, a background job): keep it so
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _split_csv(values: list[str] | None, option: str) -> tuple[str, ...] | None:
    """Repeated and comma-separated option values as one tuple; None when not given. An empty
    piece (``--engine ""``, ``--engine local,``) is refused: it would otherwise mean "all"."""
    if not values:
        return None
    pieces = [v.strip() for value in values for v in value.split(",")]
    if not all(pieces):
        raise RunnerError(
            f"{option} has an empty name ({', '.join(map(repr, values))}); give names such as "
            "local,dask, or leave the option out"
        )
    return tuple(pieces)


def _split_levels(text: str) -> list[str]:
    """``1,2`` -> ["1", "2"]; commas inside brackets stay (``[100],[50,20]``)."""
    out, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        current += ch
    out.append(current.strip())
    return [v for v in out if v]


def _numbers(values: list[str] | None, option: str, kind: type) -> tuple[Any, ...] | None:
    """Repeated / comma-separated numbers of one kind; None when not given."""
    if not values:
        return None
    out = []
    for value in values:
        if not all(piece.strip() for piece in value.split(",")):  # "1,,2", "1,": not "1,2"
            raise RunnerError(
                f"{option} has an empty value ({value!r}); give values such as 1,2, "
                "or leave the option out"
            )
        for piece in _split_levels(value):
            try:
                out.append(kind(piece))
            except ValueError:
                what = "integers such as 1,2" if kind is int else "numbers such as 0.5,1"
                raise RunnerError(f"{option} takes comma-separated {what}; got {piece!r}") from None
    if not out:
        raise RunnerError(f"{option} is empty; give values such as 1,2")
    return tuple(out)


def _param_value(text: str) -> Any:
    """A --param level as TOML reads it (5, 0.1, true, [100, 50]), else the text itself."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_params(values: list[str] | None) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    out: dict[str, tuple[Any, ...]] = {}
    for value in values or ():
        key, sep, levels = value.partition("=")
        key = key.strip()
        if not sep or not key or not levels.strip():
            raise RunnerError(
                f"--param takes KEY=V1,V2 such as k=1,3,5 or hidden=[100],[50,20]; got {value!r}"
            )
        if key in out:
            raise RunnerError(f"--param {key} is given twice; list all its levels once: {key}=A,B")
        out[key] = tuple(_param_value(v) for v in _split_levels(levels))
    return tuple(out.items())


def _fraction(text: str | None, option: str) -> float | None:
    """``5%`` or ``0.05`` -> 0.05."""
    if text is None:
        return None
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise RunnerError(
            f"{option} takes a percentage such as 5% (or 0.05); got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise RunnerError(f"{option} {text} must be between 0% and 100%, e.g. 5%")
    return value


GRID_HELP = "; lists build the grid when no -e is given, and filter the experiment when it is."


@app.command()
def trials(
    n: Annotated[int | None, typer.Option("--n", help="Measured trials per configuration.")] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            help="Experiment name (paper002, or just 002) or TOML path. Default: the grid from "
            "the options below, or the default experiment when none is given.",
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Run the experiment's [quick] variant (fewer trials, smaller grid)."
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help=f"Run a grid of more than {MAX_CONFIGS:,} configurations."),
    ] = False,
    warmup: Annotated[
        int | None,
        typer.Option(help="Warm-up trials per configuration and round (stored, flagged)."),
    ] = None,
    engine: Annotated[
        list[str] | None,
        typer.Option(help="Engines, e.g. local,dask,spark,ray (grid default: local)" + GRID_HELP),
    ] = None,
    workload: Annotated[
        list[str] | None,
        typer.Option(help="Workloads, e.g. knn,mlp (grid default: knn,mlp)" + GRID_HELP),
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option(help="Datasets, e.g. digits,fashion-mnist" + GRID_HELP)
    ] = None,
    workers: Annotated[
        list[str] | None,
        typer.Option(help="Worker counts of distributed engines, e.g. 1,2,4" + GRID_HELP),
    ] = None,
    threads: Annotated[
        list[str] | None, typer.Option(help="Threads per worker, e.g. 1,2" + GRID_HELP)
    ] = None,
    batch_size: Annotated[
        list[str] | None, typer.Option(help="Batch sizes of training workloads" + GRID_HELP)
    ] = None,
    epochs: Annotated[
        list[str] | None, typer.Option(help="Epochs of training workloads" + GRID_HELP)
    ] = None,
    data_fraction: Annotated[
        list[str] | None, typer.Option(help="Fractions of the data, e.g. 0.5,1" + GRID_HELP)
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="Workload parameter levels KEY=V1,V2 (repeatable), e.g. k=1,3,5" + GRID_HELP
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            help="Rounds the n trials are spread over; each starts every engine afresh, "
            "configurations in a new seeded order (default 2; 1 with --n 1)."
        ),
    ] = None,
    until_ci: Annotated[
        str | None,
        typer.Option(
            help="Add rounds until each configuration's 95% interval of the median train_s is "
            "within this, e.g. 5%."
        ),
    ] = None,
    max_n: Annotated[
        int | None,
        typer.Option(help="Most measured trials per configuration with --until-ci (50)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the configurations and the expected time; run nothing."
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Base random seed.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per trial; a slower trial is stopped.")
    ] = None,
    data_dir: Annotated[
        list[str] | None,
        typer.Option(
            help="Folder or URL (s3://bucket/prefix, gs://, file://) of the IDX files; several "
            "(repeat or comma-separate) make where the data live a factor (storage)."
        ),
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
    no_sample: Annotated[
        bool,
        typer.Option(
            "--no-sample",
            help="Do not sample each trial's process tree (CPU, memory, disk, network at 10 Hz): "
            "no samples rows, no peak_rss_mb / cpu_s metrics.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Take up an interrupted or killed run, RUN_ID (default: the latest unfinished "
            "one): run only its missing trials, with the seeds they would have had, into it.",
        ),
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Argument(metavar="RUN_ID", help="The run --resume takes up.", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run configurations (from -e EXPERIMENT, or the grid the options give), --n trials each
    spread over rounds, appending every trial to --db; or --resume a run that did not finish."""
    from runner.trials import TrialOptions, plan, resume_run, run_experiment

    try:
        if run_id is not None and not resume:
            raise RunnerError(f"a run id ({run_id}) is what --resume takes up; add --resume")
        if resume:
            given = [
                name
                for name, value in (
                    ("--n", n), ("-e", experiment), ("--quick", quick), ("--warmup", warmup),
                    ("--engine", engine), ("--workload", workload), ("--dataset", dataset),
                    ("--workers", workers), ("--threads", threads),
                    ("--batch-size", batch_size), ("--epochs", epochs),
                    ("--data-fraction", data_fraction), ("--param", param),
                    ("--rounds", rounds), ("--until-ci", until_ci), ("--max-n", max_n),
                    ("--seed", seed), ("--timeout", timeout), ("--data-dir", data_dir),
                    ("--spark-master", spark_master), ("--spark-mode", spark_mode),
                    ("--dask-scheduler", dask_scheduler), ("--ray-address", ray_address),
                    ("--no-sample", no_sample), ("--dry-run", dry_run),
                )
                if value not in (None, False, [])
            ]  # fmt: skip
            if given:
                raise RunnerError(
                    f"--resume runs the rest of a run as its spec says; leave out "
                    f"{', '.join(given)}"
                )
            with _stop_on_signals():
                result = resume_run(run_id, db=db, progress=not quiet)
            _print_result(result, json_out)
            return
        grid = {
            "engine": _split_csv(engine, "--engine"),
            "workload": _split_csv(workload, "--workload"),
            "dataset": _split_csv(dataset, "--dataset"),
            "workers": _numbers(workers, "--workers", int),
            "threads_per_worker": _numbers(threads, "--threads", int),
            "batch_size": _numbers(batch_size, "--batch-size", int),
            "epochs": _numbers(epochs, "--epochs", int),
            "data_fraction": _numbers(data_fraction, "--data-fraction", float),
        }
        options = TrialOptions(
            experiment=experiment,
            n=n,
            warmup=warmup,
            grid=tuple((k, tuple(v)) for k, v in grid.items() if v),
            params=_parse_params(param),
            seed=seed,
            timeout=timeout,
            data_dir=_split_csv(data_dir, "--data-dir") or (),
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
            rounds=rounds,
            until_ci=_fraction(until_ci, "--until-ci"),
            max_n=max_n,
            sample=not no_sample,
            yes=yes,
        )
        if dry_run:
            the_plan = plan(options)
            text = (
                json.dumps(the_plan.to_dict() | the_plan.experiment.to_dict(), indent=2)
                if json_out
                else the_plan.describe(db)
            )
            typer.echo(terminal_safe(text))
            return
        with _stop_on_signals():
            result = run_experiment(options, db=db, argv=sys.argv, progress=not quiet)
    except RunnerError as exc:
        _fail(exc)
        return
    except RunInterrupted as exc:
        _interrupted(exc)
    _print_result(result, json_out)


def _interrupted(exc: RunInterrupted) -> None:
    lines = [
        f"interrupted ({exc.signal}): run {exc.run_id} is marked interrupted; the trials that "
        f"finished are kept in {exc.db}; to run the rest: {exc.resume_command}"
    ]
    if exc.note:
        lines.append(f"note: {exc.note}")
    typer.echo(terminal_safe("\n".join(lines)), err=True)
    raise typer.Exit(exc.exit_code) from None


def _print_result(result: Any, json_out: bool) -> None:
    typer.echo(json.dumps(result.to_dict(), indent=2) if json_out else terminal_safe(str(result)))
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
    typer.echo(terminal_safe(str(result)))


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
    typer.echo(terminal_safe(str(result)))


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
    typer.echo(terminal_safe(str(result)))


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
        typer.echo(terminal_safe(f"{name}\t{description}"))


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
        typer.echo(
            terminal_safe(
                f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"
            )
        )


def main() -> None:
    from runner.climain import run_app

    run_app(app)
