"""``build_report``: analysis results -> context -> HTML, LaTeX or PDF, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reports.context import ReportContext, build_context
from reports.errors import ReportError
from reports.html import html_environment
from reports.latex import check_tex, compile_pdf, latex_environment

Format = Literal["html", "tex", "pdf"]
FORMATS: tuple[str, ...] = ("html", "tex", "pdf")
PAPER_KEYS: tuple[str, ...] = ("000", "001", "002", "003", "004")


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


#: File name endings a report of each format may replace when the file is already there.
_OUT_SUFFIXES = {"html": (".html", ".htm"), "pdf": (".pdf",), "tex": (".tex",)}


def _check_out(out: Path, *, db: Path, fmt: str) -> None:
    """Refuse an ``--out`` the report must not write: a folder, a missing folder, anything that
    is not a regular file (a device, FIFO or socket, even through a link), the results database
    itself or any DuckDB file, and an existing file of another kind than the report (only a
    ``.html``/``.htm``, ``.pdf`` or ``.tex`` file of the format asked for is replaced)."""
    if out.is_dir():
        raise ReportError(f"--out {out} is a directory; give a file name, e.g. {out / out.name}")
    if not out.parent.exists():
        raise ReportError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if not out.exists():
        if out.is_symlink():
            raise ReportError(f"--out {out} is a link to nothing; give a new file name")
        return
    if not out.is_file():
        raise ReportError(
            f"--out {out} is not a regular file (a device, FIFO or socket); give a file name"
        )
    if db.exists() and out.samefile(db):
        raise ReportError(
            f"--out {out} is the results database (--db); give the report its own file name, "
            f"e.g. report.{fmt}"
        )
    with out.open("rb") as fh:
        head = fh.read(12)
    if head[8:12] == b"DUCK":
        raise ReportError(f"--out {out} is a DuckDB database; give the report its own file name")
    if out.suffix.lower() not in _OUT_SUFFIXES[fmt]:
        raise ReportError(
            f"--out {out} exists and is not a .{fmt} file, so the report will not replace it; "
            f"give a new name or one ending in .{fmt}"
        )


def render_html(context: ReportContext) -> str:
    """The self-contained HTML page: CSS and SVG figures inline."""
    from markupsafe import Markup

    sections = context.as_template_vars()
    # Figures' SVG is trusted markup only because matplotlib wrote it (it escapes label text).
    for fig in context.figures():
        object.__setattr__(fig, "svg", Markup(fig.svg))
    return html_environment().get_template("report.html.j2").render(**sections)


def render_tex(context: ReportContext, *, stem: str = "report") -> tuple[str, dict[str, bytes]]:
    """The LaTeX source and the figure PDFs it includes (``<stem>-fig<N>.pdf``)."""
    files: dict[str, bytes] = {}
    for i, fig in enumerate(context.figures(), 1):
        name = f"{stem}-fig{i}.pdf"  # built from [A-Za-z0-9-] only
        object.__setattr__(fig, "file", name)
        files[name] = fig.pdf
    source = latex_environment().get_template("report.tex.j2").render(**context.as_template_vars())
    return source, files


def _papers(paper: str | Sequence[str] | None) -> tuple[str, ...]:
    if paper is None:
        return ()
    items = [paper] if isinstance(paper, str) else list(paper)
    keys: list[str] = []
    for item in items:
        for key in str(item).split(","):
            key = key.strip()
            if key == "all":
                keys.extend(PAPER_KEYS)
            elif key.removeprefix("paper") in PAPER_KEYS:
                keys.append(key.removeprefix("paper"))
            else:
                raise ReportError(
                    f"--paper {key!r} is not a paper; give one of {', '.join(PAPER_KEYS)} or all"
                )
    return tuple(dict.fromkeys(keys))


def build_report(
    db: Path | str = "results.duckdb",
    *,
    fmt: Format = "pdf",
    out: Path | None = None,
    paper: str | Sequence[str] | None = None,
    compare: Sequence[str] = (),
    papers_dir: Path | None = None,
) -> ReportResult:
    """Build the report from the trials in ``db`` and write it to ``out``
    (default ``report.<fmt>`` in the current directory).

    Without ``paper``: the general report (summary, the comparisons the data support or those
    ``compare`` names as ``FACTOR=A,B``, distributions, provenance). With ``paper`` (a key such
    as ``"000"``, several, or ``"all"``): one section per paper, from
    ``reports/papers/paperKEY.toml`` (or ``papers_dir``) and the database.
    For ``tex`` the figures are written beside the ``.tex`` file as ``<stem>-fig<N>.pdf``
    (the stem reduced to letters, digits and ``-``).
    Raises :class:`ReportError` for problems the user can fix; nothing is written then.
    """
    from reports.compare import parse_compare

    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    papers = _papers(paper)
    compare_items = parse_compare([compare] if isinstance(compare, str) else compare)
    if papers and compare_items:
        raise ReportError("--compare applies to the general report; drop it or drop --paper")
    db = Path(db)
    out = Path(out) if out is not None else Path.cwd() / f"report.{fmt}"
    _check_out(out, db=db, fmt=fmt)
    if not db.exists():
        raise ReportError(
            f"no database at {db}: run `runner trials` first, or point --db at a results file"
        )
    if db.is_dir():
        raise ReportError(f"--db {db} is a directory; give a results file")
    if fmt == "pdf":
        check_tex()  # fail before any work when TeX is missing

    from reports.figures_base import rendering

    # each figure is rendered in the one format this report embeds: SVG in HTML, PDF in LaTeX
    with rendering("svg" if fmt == "html" else "pdf"):
        context = build_context(
            db, compare_items=compare_items, papers=papers, papers_dir=papers_dir
        )

    if fmt == "html":
        _write_atomic(out, render_html(context).encode("utf-8"))
    elif fmt == "pdf":
        source, files = render_tex(context)
        _write_atomic(out, compile_pdf(source, files=files))
    else:
        stem = re.sub(r"[^A-Za-z0-9-]+", "-", out.stem).strip("-") or "report"
        source, files = render_tex(context, stem=stem)
        for name, data in files.items():
            _write_atomic(out.with_name(name), data)
        _write_atomic(out, source.encode("utf-8"))
    return ReportResult(
        path=out,
        format=fmt,
        run_ids=tuple(context.run_ids),
        n_trials=int(context.n_trials),
        warnings=tuple(context.warnings),
    )
