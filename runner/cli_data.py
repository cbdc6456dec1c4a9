"""`runner data`: write a dataset as IDX files to a folder or an object store, and read one back.

Registered in runner/cli.py as ``app.add_typer(data_app, name="data")``. Only this module (and
runner/cli.py) imports typer or prints; the work is runner.objectstore's.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from runner.climain import QuickHelpGroup, terminal_safe
from runner.errors import RunnerError

data_app = typer.Typer(
    cls=QuickHelpGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Datasets as IDX files in a folder or an object store (s3://, gs://, file://).",
)

DatasetOption = Annotated[
    str, typer.Option("--dataset", help="digits, fashion-mnist, mnist or emnist.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@data_app.callback()
def _data_root() -> None:
    """Datasets as IDX files in a folder or an object store (s3://, gs://, file://)."""


def _fail(exc: Exception) -> None:
    typer.echo(terminal_safe(f"error: {exc}"), err=True)
    raise typer.Exit(2)


@data_app.command("export")
def export(
    dataset: DatasetOption,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Folder or fsspec URL to write to, e.g. s3://bucket/digits (bucket must exist).",
        ),
    ],
    data_dir: Annotated[
        str | None,
        typer.Option(help="Where to read the dataset (default: its bundled copy or Debian's)."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Write DATASET as IDX files to --to, so `runner trials --data-dir` can read it there."""
    from runner.objectstore import export_dataset

    try:
        result = export_dataset(dataset, to, data_dir=data_dir)
    except RunnerError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(result.to_dict()) if json_out else terminal_safe(str(result)))


@data_app.command("check")
def check(
    dataset: DatasetOption,
    data_dir: Annotated[
        str | None,
        typer.Option(help="Folder or fsspec URL to read from (default: the bundled copy)."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Read DATASET from --data-dir once, as a trial would, and say what was read and how fast."""
    from runner.objectstore import probe_dataset

    try:
        result = probe_dataset(dataset, data_dir)
    except RunnerError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(result.to_dict()) if json_out else terminal_safe(str(result)))
