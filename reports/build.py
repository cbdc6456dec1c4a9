"""``build_report``: analysis results -> context -> HTML, LaTeX or PDF, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup

from reports.context import build_context
from reports.errors import ReportError
from reports.figures import boxplot
from reports.html import html_environment
from reports.latex import Trusted, check_tex, compile_pdf, latex_environment

Format = Literal["html", "tex", "pdf"]
FORMATS: tuple[str, ...] = ("html", "tex", "pdf")
FIGURE_NAME = "boxplot.pdf"
Panels = list[tuple[str, tuple[Any, ...]]]


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote."""

    path: Path
    format: str
    run_ids: tuple[str, ...]
    n_trials: int
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "format": self.format,
            "run_ids": list(self.run_ids),
            "n_trials": self.n_trials,
            "warnings": list(self.warnings),
        }


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp makes the file 0600; give it the mode a plain open() would (umask applied).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise ReportError(f"--out {out} is a directory; give a file name, e.g. {out / out.name}")
    if not out.parent.exists():
        raise ReportError(f"--out {out}: folder {out.parent} does not exist; create it first")


def render_html(context: dict, panels: Panels) -> str:
    figure = None
    if panels:
        # Trusted markup only because we generated it: matplotlib escapes label text in SVG.
        figure = Markup(boxplot(panels, metric=context["boxplot"]["metric"]).svg)
    template = html_environment().get_template("report.html.j2")
    return template.render(**context, figure_svg=figure)


def render_tex(
    context: dict, panels: Panels, *, figure_name: str = FIGURE_NAME
) -> tuple[str, dict[str, bytes]]:
    """The LaTeX source and the files it includes (the boxplot PDF as ``figure_name``)."""
    files: dict[str, bytes] = {}
    figure = None
    if panels:
        files[figure_name] = boxplot(panels, metric=context["boxplot"]["metric"]).pdf
        figure = Trusted(figure_name)  # a name we built from [A-Za-z0-9-] only
    template = latex_environment().get_template("report.tex.j2")
    return template.render(**context, figure_pdf=figure), files


def build_report(
    db: Path | str = "results.duckdb", *, fmt: Format = "pdf", out: Path | None = None
) -> ReportResult:
    """Build the report from the trials in ``db`` and write it to ``out``
    (default ``report.<fmt>`` in the current directory).

    For ``tex`` the figure is written beside the ``.tex`` file as ``<stem>-boxplot.pdf``
    (the stem reduced to letters, digits and ``-``).
    Raises :class:`ReportError` for problems the user can fix; nothing is written then.
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    db = Path(db)
    out = Path(out) if out is not None else Path.cwd() / f"report.{fmt}"
    _check_out(out)
    if not db.exists():
        raise ReportError(
            f"no database at {db}: run `runner trials` first, or point --db at a results file"
        )
    if fmt == "pdf":
        check_tex()  # fail before any work when TeX is missing

    context, panels = build_context(db)

    if fmt == "html":
        _write_atomic(out, render_html(context, panels).encode("utf-8"))
    elif fmt == "pdf":
        source, files = render_tex(context, panels)
        _write_atomic(out, compile_pdf(source, files=files))
    else:
        stem = re.sub(r"[^A-Za-z0-9-]+", "-", out.stem).strip("-") or "report"
        source, files = render_tex(context, panels, figure_name=f"{stem}-{FIGURE_NAME}")
        for name, data in files.items():
            _write_atomic(out.with_name(name), data)
        _write_atomic(out, source.encode("utf-8"))
    return ReportResult(
        path=out,
        format=fmt,
        run_ids=tuple(context["run_ids"]),
        n_trials=int(context["n_trials"]),
        warnings=tuple(context["warnings"]),
    )
