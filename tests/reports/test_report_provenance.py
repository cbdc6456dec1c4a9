"""The report names the trials of runs that did not finish: a note box before the contents
(HTML and LaTeX/PDF), a line at the top of each section they enter, the store's notes on
unmerged journals, and the same notes on ``report build``'s stderr; run ids and paths come out
literally. Counts are checked against DuckDB queries on the file."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from markupsafe import escape

from reports import build_report
from tests.conftest import run_cli

from .unfinished import add_run, db_count

HOSTILE_ID = r"k<script>alert(1)</script>_%&$#{}~^\input{/etc/passwd}"
needs_tex = pytest.mark.skipif(
    shutil.which("latexmk") is None
    or shutil.which("pdflatex") is None
    or shutil.which("pdftotext") is None,
    reason="TeX Live (latexmk, pdflatex) or pdftotext not installed",
)


def _box(text: str) -> str:
    """The HTML note box's markup."""
    match = re.search(r'<aside class="caveat-box".*?</aside>', text, re.S)
    assert match, "no note box"
    return match.group(0)


def _text(box: str) -> str:
    """The box's text as HTML-escaped text: its markup (tags) taken out."""
    return re.sub(r"<[^>]*>", "", box)


def _db(tmp_path: Path, run_id: str = "kill1") -> Path:
    folder = tmp_path / "a&b <i>_%"
    folder.mkdir()
    db = folder / "r$1.duckdb"
    add_run(db, "done", "finished", 6)
    add_run(db, run_id, "killed", 4, minute=3)
    return db


def test_the_html_report_names_a_killed_run_before_the_contents_and_in_each_section(
    tmp_path: Path,
) -> None:
    db = _db(tmp_path)
    out = tmp_path / "r.html"
    result = build_report(db, fmt="html", out=out)
    text = out.read_text("utf-8")
    n = db_count(db, "SELECT count(*) FROM trials WHERE run_id = 'kill1' AND status = 'ok'")
    total = db_count(db, "SELECT count(*) FROM trials WHERE status = 'ok'")
    assert (n, total) == (4, 10)
    box = _box(text)
    assert text.index(box) < text.index('<nav id="toc"')  # before any result
    line = (
        "4 of 10 analysed trials come from run kill1, which was killed (its runner died; last "
        "trial 2026-12-07 02:03 UTC); resume: runner trials --resume kill1 --db "
        + shlex.quote(str(db))
    )
    assert str(escape(line)) in _text(box)
    assert "<i>" not in box and "a&amp;b &lt;i&gt;_%" in box  # the path is text
    # the command set apart, its options never broken at a hyphen (a browser breaks after one)
    assert '<code class="cmd">runner trials <span class="opt">--resume</span> kill1 ' in box
    assert '<span class="opt">--db</span>' in box
    line = "Includes 4 trials of run kill1, which did not finish normally"
    sections = re.findall(r"<h2[^>]*>(.*?)</h2>", text)
    assert text.count(line) == len(sections) - 2  # not in Contents, not in the appendix
    assert result.warnings[0].startswith("4 of 10 analysed trials come from run kill1")
    # finished runs only: no box, no line
    only = tmp_path / "only.duckdb"
    add_run(only, "done", "finished", 6)
    build_report(only, fmt="html", out=tmp_path / "only.html")
    text = (tmp_path / "only.html").read_text("utf-8")
    assert "caveat" not in text.split("</style>")[1]


def test_hostile_run_ids_are_text_in_html_and_latex(tmp_path: Path) -> None:
    db = _db(tmp_path, HOSTILE_ID)
    out = tmp_path / "r.html"
    build_report(db, fmt="html", out=out)
    box = _box(out.read_text("utf-8"))
    assert "<script>" not in box
    assert "k&lt;script&gt;alert(1)&lt;/script&gt;_%&amp;$#{}~^\\input{/etc/passwd}" in box
    tex = tmp_path / "r.tex"
    build_report(db, fmt="tex", out=tex)
    source = tex.read_text("utf-8")
    start = source.index("Note: trials from runs that did not finish")
    box = source[start : source.index("\\tableofcontents")]
    assert "\\input{/etc/passwd}" not in box and "<script>" not in box
    assert "\\textbackslash{}input\\{/etc/passwd\\}" in box
    assert "\\textless{}script\\textgreater{}" in box
    assert "a\\&b \\textless{}i\\textgreater{}\\_\\%" in box  # the database path
    # the command in typewriter, its options unbreakable and with two hyphens, not a dash
    assert "\\texttt{runner trials \\mbox{-{}-{}resume} \\textquotesingle{}k" in box
    assert "\\mbox{-{}-{}db} " in box


@needs_tex
def test_the_pdf_report_shows_the_note_with_the_run_id_literally(tmp_path: Path) -> None:
    db = _db(tmp_path, HOSTILE_ID)
    out = tmp_path / "r.pdf"
    build_report(db, fmt="pdf", out=out)
    text = subprocess.run(
        ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    assert "Note: trials from runs that did not finish" in flat
    assert "4 of 10 analysed trials come from run k<script>alert(1)</script>_%&$#{}~^" in flat
    assert "\\input{/etc/passwd}" in flat
    assert flat.count("Includes 4 trials of run k<script>") >= 3
    assert "; resume: runner trials --resume 'k<script>alert(1)</script>" in flat


def test_report_build_prints_the_notes_on_stderr(tmp_path: Path) -> None:
    db = _db(tmp_path)
    proc = run_cli("report", "build", "--format", "html", "--db", db, "--out", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert notes[0].startswith("note: 4 of 10 analysed trials come from run kill1, which was ")
    assert "--where" not in notes[0]  # report has no --where
    json.dumps(notes)


def _dead_runner_with_a_journal(tmp_path: Path) -> tuple[Path, str, Path]:
    """A finished run, then a run whose runner 'died' (its journal closed, not deleted) with 3
    trials merged and 2 still in its journal."""
    from datetime import timedelta

    from runner.journal import RunLog
    from runner.store import TrialRecord, open_store

    from .unfinished import START

    db = tmp_path / "r.duckdb"
    add_run(db, "done", "finished", 6)
    with open_store(db) as store:
        log = RunLog.begin(store, source="measured", argv=["x"], spec={"n": 1}, env={})

    def record(i: int) -> TrialRecord:
        values = {"experiment": "x", "engine": "local", "workload": "noop", "dataset": "digits",
                  "workers": 1, "warmup": False, "repetition": i,
                  "started_at": START + timedelta(minutes=5, seconds=i),
                  "train_s": float(i), "wall_s": float(i) + 0.5}  # fmt: skip
        return TrialRecord(run_id=log.run_id, status="ok", values=values)

    log.append_trials([record(i) for i in (1, 2, 3)])
    assert log.merge(5)
    log.append_trials([record(i) for i in (4, 5)])
    log.journal.close(delete=False)  # the runner is gone: its lock released, the journal kept
    return db, log.run_id, log.journal.path


def test_a_dead_runner_s_journal_is_one_plain_line_in_the_report(tmp_path: Path) -> None:
    """Trials of a dead run both merged and in its journal: one line in the note box (the run,
    its journal's count, the resume command), no second line from the store, no backticks."""
    db, run_id, journal = _dead_runner_with_a_journal(tmp_path)
    n = db_count(db, "SELECT count(*) FROM trials WHERE run_id = ? AND status = 'ok'", [run_id])
    total = db_count(db, "SELECT count(*) FROM trials WHERE status = 'ok'")
    assert (n, total) == (3, 9)
    out = tmp_path / "r.html"
    result = build_report(db, fmt="html", out=out)
    box = _box(out.read_text("utf-8"))
    assert "`" not in box
    assert len(result.warnings) == 1  # stderr's line: the command between backticks there
    line = (
        f"3 of 9 analysed trials come from run {run_id}, which did not finish (its runner is "
        f"gone; last trial 2026-12-07 02:05 UTC); 2 more of its finished trials are in its "
        f"journal {journal}, not in the database yet; resume (merges them too): runner trials "
        f"--resume {run_id} --db {db}"
    )
    assert result.warnings[0].replace("`", "") == line
    assert str(escape(line)) in _text(box)
    assert box.count(run_id) == 3  # one line only: the run, its journal, its resume command


def test_the_runs_appendix_shows_how_each_run_ended() -> None:
    from types import SimpleNamespace

    from reports.environment import runs_table

    def run(run_id: str, **more: object) -> SimpleNamespace:
        return SimpleNamespace(run_id=run_id, source="measured", started_at=None, n_trials=1200,
                               experiments=("x",), argv=["runner", "trials"], **more)  # fmt: skip

    statuses = ["finished", "killed", "interrupted", "failed", "running"]
    table = runs_table([run(s, status=s) for s in statuses])
    heads = [c.label for c in table.columns]
    assert heads[:3] == ["Run", "Source", "Status"]
    assert [row[2] for row in table.rows] == statuses
    # run objects that carry no status: no such column
    assert "Status" not in [c.label for c in runs_table([run("a")]).columns]


def test_the_report_s_runs_appendix_has_each_run_s_status(tmp_path: Path) -> None:
    db = _db(tmp_path)
    add_run(db, "int1", "interrupted", 2, signal="SIGTERM", minute=5)
    out = tmp_path / "r.html"
    build_report(db, fmt="html", out=out)
    text = out.read_text("utf-8")
    table = text[text.index('id="runs"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S) for row in rows]
    assert cells[0][:3] == ["Run", "Source", "Status"]
    assert [c[:3] for c in cells[1:]] == [
        ["done", "measured", "finished"],
        ["kill1", "measured", "killed"],
        ["int1", "measured", "interrupted"],
    ]
