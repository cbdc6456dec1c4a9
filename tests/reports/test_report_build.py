"""End to end: a real DuckDB file -> report build -> HTML / LaTeX / a real PDF (latexmk)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reports.build
from reports import ReportError, build_report
from reports.latex import compile_pdf
from runner.store import open_store

from .conftest import CONFIGS, HOSTILE, make_db

needs_tex = pytest.mark.skipif(
    shutil.which("latexmk") is None or shutil.which("pdflatex") is None,
    reason="TeX Live (latexmk, pdflatex) not installed",
)
needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="no poppler-utils")


def _sig4(x: float) -> str:
    """Four significant digits, positional: how the report shows seconds (independent code)."""
    return np.format_float_positional(x, precision=4, unique=False, fractional=False, trim="k")


def _expected_means(rows: list[dict]) -> dict[tuple[str, str, int], str]:
    means = {}
    for engine, workload, workers in CONFIGS:
        values = np.array(
            [
                r["train_s"]
                for r in rows
                if r["engine"].startswith(engine)
                and r["workload"].startswith(workload)
                and r["workers"] == workers
            ]
        )
        assert len(values) == 5
        means[(engine, workload, workers)] = _sig4(values.mean())
    return means


def _pdf_text(path: Path) -> str:
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    return out.stdout


def _squash(text: str) -> str:
    return " ".join(text.split())


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reports.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_tex
@needs_pdftotext
def test_pdf_shows_the_summary_means(db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, rows = db
    out = tmp_path / "out.pdf"
    result = build_report(path, fmt="pdf", out=out)
    assert result.path == out and result.format == "pdf"
    assert result.n_trials == 30
    assert len(result.run_ids) == 1
    assert out.read_bytes().startswith(b"%PDF")
    text = _pdf_text(out)
    for mean in _expected_means(rows).values():
        assert mean in text
    assert result.run_ids[0] in text
    assert "Comparisons" in text and "Welch" in text and "Contents" in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.pdf")]


def test_html_shows_the_summary_means(db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, rows = db
    out = tmp_path / "r.html"
    result = build_report(path, fmt="html", out=out)
    html = out.read_text(encoding="utf-8")
    for mean in _expected_means(rows).values():
        assert f">{mean}<" in html
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html and "<style>" in html
    assert "<link" not in html and "src=" not in html  # self-contained
    assert result.run_ids[0] in html


def test_html_is_deterministic(db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, _ = db
    a = build_report(path, fmt="html", out=tmp_path / "a.html").path.read_bytes()
    b = build_report(path, fmt="html", out=tmp_path / "b.html").path.read_bytes()
    assert a == b


def test_hostile_strings_are_escaped_in_html(
    hostile_db: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    path, _ = hostile_db
    out = tmp_path / "h.html"
    build_report(path, fmt="html", out=out)
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert r"_ % &amp; $ # { } ~ ^ \ \input{/etc/passwd}" in html


def test_hostile_strings_are_escaped_in_tex(
    hostile_db: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    path, _ = hostile_db
    out = tmp_path / "my report.tex"
    build_report(path, fmt="tex", out=out)
    tex = out.read_text(encoding="utf-8")
    assert r"\input{/etc/passwd}" not in tex
    assert r"\textbackslash{}input\{/etc/passwd\}" in tex
    assert (tmp_path / "my-report-fig1.pdf").read_bytes().startswith(b"%PDF")
    assert "keepaspectratio]{my-report-fig1.pdf}" in tex
    if shutil.which("latexmk") and shutil.which("pdflatex"):
        figure = (tmp_path / "my-report-fig1.pdf").read_bytes()
        assert compile_pdf(tex, files={"my-report-fig1.pdf": figure}).startswith(b"%PDF")


@needs_tex
@needs_pdftotext
def test_hostile_strings_compile_and_show_in_pdf(
    hostile_db: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    path, _ = hostile_db
    out = tmp_path / "h.pdf"
    build_report(path, fmt="pdf", out=out)
    text = _squash(_pdf_text(out))
    assert _squash(HOSTILE) in text
    assert "exp" + _squash(HOSTILE) in text
    assert "root:" not in text  # /etc/passwd was not read


def test_empty_database_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    open_store(path).close()
    proc = _cli("build", "--format", "html", "--db", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "error: no trials in DB: run `runner trials` first\n"
    assert not (tmp_path / "report.html").exists()


def test_run_without_trials_is_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    with open_store(path) as store:
        store.begin_run(source="measured", argv=["runner", "trials"], env={})
    with pytest.raises(ReportError, match="no trials in DB"):
        build_report(path, fmt="html", out=tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_missing_database_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = _cli("build", "-f", "pdf", "--db", str(tmp_path / "nope.duckdb"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_pdflatex_is_one_line_exit_2(db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, _ = db
    kept = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any((Path(d) / tool).exists() for tool in ("pdflatex", "latexmk"))
    ]
    env = dict(os.environ, PATH=os.pathsep.join(kept))
    proc = _cli("build", "--format", "pdf", "--db", str(path), cwd=tmp_path, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: pdflatex not found: install TeX Live")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "report.pdf").exists()


def test_cli_success_line(db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, _ = db
    proc = _cli("build", "--format", "html", "--db", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wrote report.html (30 trials, runs ")
    assert proc.stdout.count("\n") == 1
    assert (tmp_path / "report.html").exists()
    quiet = _cli("build", "-f", "html", "--db", str(path), "--out", "q.html", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_compile_failure_leaves_nothing(
    db: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = db

    def fail(source: str, *, files: dict[str, bytes] | None = None) -> bytes:
        raise ReportError("LaTeX failed (boom); see the log at /tmp/x/report.log")

    monkeypatch.setattr(reports.build, "compile_pdf", fail)
    monkeypatch.setattr(reports.build, "check_tex", lambda: None)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ReportError, match="report.log"):
        build_report(path, fmt="pdf", out=out_dir / "r.pdf")
    assert list(out_dir.iterdir()) == []


def test_existing_report_survives_a_failure(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("previous")
    empty = tmp_path / "empty.duckdb"
    open_store(empty).close()
    with pytest.raises(ReportError):
        build_report(empty, fmt="html", out=out)
    assert out.read_text() == "previous"


def test_default_output_is_in_the_cwd(
    db: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = db
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = build_report(path, fmt="html")
    assert result.path == work / "report.html" and result.path.exists()


def test_bad_out_folder(db: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, _ = db
    with pytest.raises(ReportError, match="does not exist"):
        build_report(path, fmt="html", out=tmp_path / "missing" / "r.html")


def test_report_file_gets_the_usual_permissions(
    db: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    path, _ = db
    out = tmp_path / "r.html"
    umask = os.umask(0o022)
    try:
        build_report(path, fmt="html", out=out)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


@needs_pdftotext
def test_names_starting_a_row_with_unicode_or_c1_controls_compile(tmp_path: Path) -> None:
    # "\\" then "[" would be read as a row-end length; C1 controls stop pdflatex
    path = tmp_path / "uni.duckdb"
    make_db(path, engine_names={"dask": "\u2192dask"}, workload_names={"knn": "k\x85nn"})
    out = tmp_path / "u.pdf"
    build_report(path, fmt="pdf", out=out)
    text = _pdf_text(out)
    assert "[U+2192]dask" in text
    assert "knn" in text


def test_report_opens_the_database_once(
    db: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.store

    opened: list[Path] = []

    def counting_open(path, **kwargs):
        opened.append(Path(path))
        return open_store(path, **kwargs)

    monkeypatch.setattr(runner.store, "open_store", counting_open)
    build_report(db[0], fmt="html", out=tmp_path / "r.html")
    assert opened == [db[0]]
