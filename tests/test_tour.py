"""README's "A short tour", run verbatim: every line of its code block, as a user types it, on
the databases the tour's own `runner` lines leave.

The block is read from README.md (comments stripped, backslash-continued lines joined), so the
test follows the README. `runner trials --n 10` (the first command) makes results.duckdb;
`analyze compare RUN1 RUN2` needs two runs of the default experiment: it runs on a copy of that
database with a second, shorter run (`runner trials --n 3`) appended, so every other line sees
exactly what the first command leaves. The `--db papers.duckdb` lines use papers.duckdb from the
tour's `runner trials --experiment 000 --quick` and `runner import published` lines; those two
are run as they are by paper 000's job of tests/conftest.py's background, which test_papers
shares (one run of 000's quick experiment for both), and the database is copied here. The runner
lines run as a background job beside the papers' quick experiments (two at a time). Everything is
written into a temporary directory (reports too: they are built there).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import JOBS, PAPERS_DB_LINES, Background, Job, copy_db, run_cli, uses

pytestmark = pytest.mark.engine

README = Path(__file__).resolve().parent.parent / "README.md"
TOOLS = ("runner", "analyze", "report")
#: lines whose failure is known and owned by another module: line -> reason (xfail, strict)
KNOWN: dict[str, str] = {}


def tour_lines(text: str | None = None) -> list[list[str]]:
    """The commands of README's "A short tour" code block, each as argv: comments stripped,
    backslash-continued lines joined, blank lines dropped."""
    text = README.read_text(encoding="utf-8") if text is None else text
    section = text.split("## A short tour", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, "README's tour has no ```bash block"
    joined = re.sub(r"\\\n", " ", match.group(1))
    commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
    commands = [c for c in commands if c]
    assert all(c[0] in TOOLS for c in commands), commands
    return commands


def _is_setup(argv: list[str]) -> bool:
    """The tour's lines that write a database: run once by the fixture, in README order."""
    return argv[:2] in (["runner", "trials"], ["runner", "import"])


LINES = tour_lines()
CASES = [c for c in LINES if not _is_setup(c)]


def _shares_papers_db(lines: list[list[str]]) -> bool:
    """Whether the tour makes papers.duckdb with exactly conftest's PAPERS_DB_LINES, one after
    the other, and no other line writes it: then paper 000's background job makes the database
    these lines leave, apart from and at the same time as the tour's other runner lines."""
    shared = [list(line) for line in PAPERS_DB_LINES]
    writers = [c for c in lines if _is_setup(c) and "papers.duckdb" in c]
    return writers == shared and any(
        lines[i : i + len(shared)] == shared for i in range(len(lines))
    )


def test_the_tour_parses() -> None:
    """The block runs the README's one command first among those that write a database, and
    has analyze and report lines; papers.duckdb is made by the two lines paper 000's job runs."""
    assert [c for c in LINES if _is_setup(c)][0] == ["runner", "trials", "--n", "10"]
    assert _shares_papers_db(LINES), "update conftest.PAPERS_DB_LINES to README's tour"
    assert sum(c[0] == "analyze" for c in CASES) >= 10
    assert any(c[0] == "report" for c in CASES)
    block = "## A short tour\n```bash\nanalyze summary \\\n  --by engine  # c\n\n# d\n```\n"
    assert tour_lines(block) == [["analyze", "summary", "--by", "engine"]]


def _failed(argv: list[str], proc: subprocess.CompletedProcess[str]) -> str:
    """What a failing line said, untruncated by pytest's assertion rewriting."""
    return (
        f"`{' '.join(argv)}` exited {proc.returncode}\n--- stdout (end)\n{proc.stdout[-3000:]}"
        f"\n--- stderr (end)\n{proc.stderr[-3000:]}"
    )


def _ok(argv: list[str], cwd: Path, timeout: float = 1200) -> str:
    proc = run_cli(argv[0], *argv[1:], cwd=cwd, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(_failed(argv, proc), pytrace=False)
    return proc.stdout


def _run_ids(db: Path) -> list[str]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def _make_tour(folder: Path) -> dict[str, Path]:
    """``{"tour": dir, "two": dir}`` under ``folder``: the tour's databases in ``tour`` (every
    runner line of the block, in order, but the papers.duckdb pair when paper 000's background
    job makes it) and, in ``two``, results.duckdb with a second run of the default experiment.
    A background job (tests/conftest.py's JOBS): it runs beside the papers' quick experiments."""
    here, two = folder / "tour", folder / "two"
    here.mkdir()
    two.mkdir()
    shared = _shares_papers_db(LINES)
    for argv in LINES:
        if _is_setup(argv) and not (shared and tuple(argv) in PAPERS_DB_LINES):
            _ok(argv, here)
    shutil.copy(here / "results.duckdb", two / "results.duckdb")
    # one round: a second run to compare with needs no second engine start per configuration
    _ok(["runner", "trials", "--n", "3", "--rounds", "1", "--quiet"], two)
    return {"tour": here, "two": two}


JOBS["tour"] = Job(_make_tour, "papers", minutes=6, needed_by=uses("tour"))


@pytest.fixture(scope="module")
def tour(background: Background) -> dict[str, Path]:
    """The tour's folders (_make_tour), papers.duckdb copied in from paper 000's job."""
    dirs: dict[str, Path] = background.result("tour")
    if _shares_papers_db(LINES):
        copy_db(background.result("paper000"), dirs["tour"] / "papers.duckdb")
    return dirs


def _case_id(argv: list[str]) -> str:
    return " ".join(argv)[:90]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN[" ".join(c)]))
        if " ".join(c) in KNOWN
        else c
        for c in CASES
    ],
    ids=_case_id,
)
def test_tour_line(tour: dict[str, Path], argv: list[str]) -> None:
    cwd = tour["tour"]
    if "RUN1" in argv:
        cwd = tour["two"]
        first, second = _run_ids(cwd / "results.duckdb")
        argv = [first if a == "RUN1" else second if a == "RUN2" else a for a in argv]
    proc = run_cli(argv[0], *argv[1:], cwd=cwd, timeout=900)
    allowed = {0}
    if argv[:2] == ["analyze", "compare"] and "--fail-on-regression" in argv:
        # exit 1 is this option's documented answer when a configuration got slower by 5% or
        # more: two runs on a shared 2-core machine may legitimately differ that much
        allowed = {0, 1}
    if proc.returncode not in allowed:
        pytest.fail(_failed(argv, proc), pytrace=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 1:
        assert proc.stderr.startswith("regression of 5% or more"), proc.stderr
    if argv[0] == "analyze":
        assert proc.stdout.strip(), "no output"
        if "--format" not in argv and "--wide" not in argv:
            long = [line for line in proc.stdout.splitlines() if len(line) > 120]
            assert not long, long
