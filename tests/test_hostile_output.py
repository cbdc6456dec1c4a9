"""Values from a results database cannot act on the terminal or on a spreadsheet: escape
sequences and bidi overrides are shown as visible escapes, and CSV cells that a spreadsheet would
run as formulas are prefixed with a quote (OWASP's CSV injection advice)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from runner.climain import terminal_safe
from tests.conftest import run_cli

OSC_TITLE = "\x1b]0;pwned\x07dask"  # sets the terminal's title
CLEAR = "x\x1b[2J"  # clears the screen
FORMULA = "@SUM(A1)"
NOTE = '=HYPERLINK("http://example.invalid")'
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    rows = [["engine", "workload", "workers", "train_s", "note"]]
    for i in range(6):
        rows.append([OSC_TITLE, "knn", 1, 1.0 + i / 10, NOTE])
        rows.append([FORMULA, "knn", 1, 2.0 + i / 10, "+cmd|' /C calc'!A0"])
        rows.append(["ray\u202etxt.exe", "knn", 1, 3.0 + i / 10, "-1.5"])
    path = folder / "h.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    db = folder / "h.duckdb"
    proc = run_cli("runner", "import", "csv", path, "--db", db)
    assert proc.returncode == 0, proc.stderr
    return db


def _clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(text)


def test_terminal_safe_shows_controls_and_keeps_layout() -> None:
    assert terminal_safe(OSC_TITLE) == "\\x1b]0;pwned\\x07dask"
    assert terminal_safe("a\u202eb\u2066c\x9bd") == "a\\u202eb\\u2066c\\x9bd"
    assert terminal_safe("tab\tand\nnewline é ✓") == "tab\tand\nnewline é ✓"


@pytest.mark.parametrize(
    "args",
    [
        ["summary"],
        ["summary", "--format", "csv"],
        ["summary", "--format", "latex"],
        ["anova", "--group", "engine"],
        ["compare", "--base", "engine=@SUM(A1)", "--new", "workload=knn", "--format", "markdown"],
    ],
)
def test_analyze_output_has_no_raw_control_characters(hostile_db: Path, args: list[str]) -> None:
    proc = run_cli("analyze", *args, "--db", hostile_db)
    assert proc.returncode in (0, 1, 2), proc.stderr
    _clean(proc.stdout)
    _clean(proc.stderr)
    if args == ["summary"]:
        assert "\\x1b]0;pwned\\x07dask" in proc.stdout  # shown, not dropped


def test_error_lines_show_escapes(hostile_db: Path) -> None:
    proc = run_cli("analyze", "ttest", "--group", "engine", "--a", CLEAR, "--b", FORMULA,
                   "--db", hostile_db)  # fmt: skip
    assert proc.returncode == 2
    assert "x\\x1b[2J" in proc.stderr and len(proc.stderr.splitlines()) == 1
    _clean(proc.stderr)


def test_csv_cells_cannot_be_formulas(hostile_db: Path) -> None:
    proc = run_cli("analyze", "summary", "--by", "engine,note", "--format", "csv", "--db",
                   hostile_db)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    engines = {r["engine"] for r in rows}
    notes = {r["note"] for r in rows}
    assert "'@SUM(A1)" in engines
    assert "'" + NOTE in notes and "'+cmd|' /C calc'!A0" in notes
    assert "-1.5" in notes  # a number keeps its sign
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@")), value
